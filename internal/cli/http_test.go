package cli

import (
	"flag"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestHTTPEndpoints serves on a real listener: liveness, readiness that
// follows the ReadyFunc (a degraded daemon is ready, with a note),
// metrics, the index, and a 404 elsewhere.
func TestHTTPEndpoints(t *testing.T) {
	var state atomic.Value // "down", "ready" or "degraded"
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "t_things_total", Help: "Things."})
	c.Add(3)
	h, err := NewHTTP("udpx", func() (bool, string) {
		switch state.Load() {
		case "ready":
			return true, ""
		case "degraded":
			return true, "degraded: a fallback serves\nsecond line"
		}
		return false, "no server in rotation\nsecond line"
	}, c)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := h.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	base := "http://" + addr.String()
	for _, tc := range []struct {
		path  string
		state string
		code  int
		body  string // what the body holds
	}{
		{"/healthz", "down", 200, "ok\n"},
		{"/readyz", "down", 503, "not ready: no server in rotation\n"},
		{"/readyz", "ready", 200, "ok\n"},
		{"/readyz", "degraded", 200, "ok, degraded: a fallback serves\n"},
		{"/metrics", "ready", 200, "t_things_total 3"},
		{"/", "ready", 200, `<a href="readyz">`},
		{"/nothing", "ready", 404, ""},
	} {
		state.Store(tc.state)
		code, body := get(t, base+tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s (%s) = %d %q, want %d with %q", tc.path, tc.state, code, body, tc.code, tc.body)
		}
		if tc.path == "/readyz" && (strings.Count(body, "\n") != 1 || body != tc.body) {
			t.Errorf("GET /readyz (%s): %q, want the one line %q", tc.state, body, tc.body)
		}
	}
}

// TestHTTPHandle: a handler added for "/" replaces the index, and added
// paths are served beside the built-in ones.
func TestHTTPHandle(t *testing.T) {
	h, err := NewHTTP("udpx", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Handle("GET /status.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"ok":true}`) }))
	h.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "dashboard") }))
	addr, err := h.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	base := "http://" + addr.String()
	for path, want := range map[string]string{"/": "dashboard", "/status.json": `{"ok":true}`, "/readyz": "ok\n", "/healthz": "ok\n"} {
		if code, body := get(t, base+path); code != 200 || body != want {
			t.Errorf("GET %s = %d %q, want %q", path, code, body, want)
		}
	}
}

// TestHTTPAddrAlias: -metrics-addr sets what -http-addr does, and either
// on the command line wins over both variables.
func TestHTTPAddrAlias(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-metrics-addr", "a:1"}, nil, "a:1"},
		{[]string{"-http-addr", "b:2"}, nil, "b:2"},
		{nil, map[string]string{"DISCAL_METRICS_ADDR": "c:3"}, "c:3"},
		{nil, map[string]string{"DISCAL_HTTP_ADDR": "d:4"}, "d:4"},
		{[]string{"-http-addr", "e:5"}, map[string]string{"DISCAL_METRICS_ADDR": "f:6"}, "e:5"},
		{[]string{"-metrics-addr", "g:7"}, map[string]string{"DISCAL_HTTP_ADDR": "h:8"}, "g:7"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v) // restored when the subtest ends
			}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			c := Register(fs, "x")
			addr := c.HTTPAddr(fs)
			if err := c.Parse(fs, tc.args, io.Discard); err != nil {
				t.Fatal(err)
			}
			if *addr != tc.want {
				t.Errorf("%v %v: addr %q, want %q", tc.args, tc.env, *addr, tc.want)
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		optional bool
		ok       bool
	}{
		{"127.0.0.1:7000", false, true},
		{"[::1]:0", false, true},
		{":7000", false, true},
		{"", true, true},
		{"", false, false},
		{"127.0.0.1", false, false},
		{"127.0.0.1:99999", false, false},
		{"127.0.0.1:x7", false, false},
	} {
		if err := CheckAddr("addr", "udp", tc.addr, tc.optional); (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%q, optional %v) = %v", tc.addr, tc.optional, err)
		}
	}
}
