package dashboard_test

import (
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpproxy/dashboard"
	"github.com/discal/discal/udpserver"
)

// badDay runs two servers and a proxy in this process, and the proxy's
// HTTP endpoint as the binary wires it (cli.NewHTTP with the proxy's
// Ready, the dashboard beside it). It returns the cluster and the
// endpoint's base URL.
func badDay(t *testing.T) (*discaltest.Cluster, string) {
	t.Helper()
	c, err := discaltest.Start(discaltest.Config{Servers: 2, Logger: discaltest.Quiet(),
		Server: udpserver.Config{Quiet: true}, Proxy: patientPolls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, err := cli.NewHTTP("udpproxy", c.Proxy.Ready)
	if err != nil {
		t.Fatal(err)
	}
	d := dashboard.New(c.Proxy, c.ProxyAddr.String())
	for _, pattern := range dashboard.Patterns {
		h.Handle(pattern, d)
	}
	addr, err := h.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return c, "http://" + addr.String()
}

// readiness is what /readyz says and what /status.json tells the page's
// banner.
type readiness struct {
	code   int
	body   string
	ready  bool
	reason string
	states string // each server's state, in order: "s1=up s2=draining"
}

func readinessOf(t *testing.T, base string) readiness {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Ready   bool   `json:"ready"`
		Reason  string `json:"ready_reason"`
		Servers []struct {
			Name, State string
		} `json:"servers"`
	}
	getJSON(t, base+"/status.json", &doc)
	r := readiness{code: resp.StatusCode, body: string(b), ready: doc.Ready, reason: doc.Reason}
	for i, s := range doc.Servers {
		if i > 0 {
			r.states += " "
		}
		r.states += s.Name + "=" + s.State
	}
	return r
}

// agree reports whether /readyz and the banner's figures say the same:
// the code goes with ready, and the body is the reason in /readyz's form.
func (r readiness) agree() bool {
	switch {
	case r.code == http.StatusOK && r.ready && r.reason == "":
		return r.body == "ok\n"
	case r.code == http.StatusOK && r.ready:
		return r.body == "ok, "+r.reason+"\n"
	case r.code == http.StatusServiceUnavailable && !r.ready:
		return r.body == "not ready: "+r.reason+"\n"
	}
	return false
}

// TestReadyOnABadDay: real servers are drained (the drain command on their
// status ports) and stopped one by one behind a real proxy. While a server
// takes new work the proxy is ready; once none does, the draining ones
// answer as a fallback and the proxy is ready but degraded, saying which;
// once none is left, it is not ready. /readyz and the banner's figures in
// /status.json say the same at every step.
func TestReadyOnABadDay(t *testing.T) {
	c, base := badDay(t)
	s1, s2 := c.Servers[0], c.Servers[1]
	stop := func(s *discaltest.Server) func(*testing.T) {
		return func(t *testing.T) {
			if err := s.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain := func(s *discaltest.Server) func(*testing.T) {
		return func(t *testing.T) {
			if got := textCommand(t, s.StatAddr.String(), "drain"); got != "ok: drain" {
				t.Fatalf("drain answered %q", got)
			}
		}
	}
	for _, tc := range []struct {
		step   string
		do     func(*testing.T)
		states string
		code   int
		reason *regexp.Regexp
	}{
		{"both up", func(*testing.T) {}, "s1=up s2=up", 200, regexp.MustCompile(`^$`)},
		{"s1 drains", drain(s1), "s1=draining s2=up", 200, regexp.MustCompile(`^$`)},
		{"s2 drains too", drain(s2), "s1=draining s2=draining", 200,
			regexp.MustCompile(`^degraded: no server takes new work; serving as a fallback: (s1, s2|s2, s1) \(draining\)$`)},
		{"s1 stops", stop(s1), "s1=down s2=draining", 200,
			regexp.MustCompile(`^degraded: no server takes new work; serving as a fallback: s2 \(draining\)$`)},
		{"s2 stops", stop(s2), "s1=down s2=down", 503, regexp.MustCompile(`^no server in rotation$`)},
	} {
		t.Run(tc.step, func(t *testing.T) {
			tc.do(t)
			var r readiness
			// The proxy learns of a drain at its next poll (100 ms) and of
			// a stop after three missed ones.
			if !eventually.Within(10*time.Second, func() bool {
				r = readinessOf(t, base)
				return r.states == tc.states && r.code == tc.code && tc.reason.MatchString(r.reason) && r.agree()
			}) {
				t.Fatalf("servers %s, /readyz %d %q, status.json ready %v %q; want %s, %d and a reason matching %s, agreeing",
					r.states, r.code, r.body, r.ready, r.reason, tc.states, tc.code, tc.reason)
			}
			t.Logf("/readyz: %d %q", r.code, r.body)
		})
	}
}
