package dashboard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpproxy/dashboard"
	"github.com/discal/discal/udpserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// patientPolls gives each status poll its whole interval: a busy machine
// (a race build beside a browser) made the default, a third, miss three in
// a row, and /calc answered "no server available".
var patientPolls = udpproxy.Config{Poll: udpproxy.DefaultPoll, PollTimeout: udpproxy.DefaultPoll}

// startDashboard runs three servers and a proxy in this process and serves
// the proxy's dashboard.
func startDashboard(t *testing.T) (*discaltest.Cluster, *httptest.Server) {
	t.Helper()
	c, err := discaltest.Start(discaltest.Config{Logger: discaltest.Quiet(), Server: udpserver.Config{Quiet: true},
		Proxy: patientPolls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	web := httptest.NewServer(dashboard.New(c.Proxy, c.ProxyAddr.String()))
	t.Cleanup(web.Close)
	return c, web
}

// getJSON fetches url and decodes its JSON body into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s, %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// The keys of /status.json that docs/operating.md documents: a contract.
var (
	proxyKeys = []string{"requests", "text", "replies", "retries", "timeouts", "no_server", "busy", "joins",
		"pending", "dropped", "drops", "servers", "version", "commit", "uptime_seconds"}
	serverKeys = []string{"name", "calc_addr", "status_addr", "source", "state", "state_reason", "up", "draining",
		"ejected", "eject_reason", "has_report", "host_cpu", "proc_cpu", "cores", "report_age_ms", "served",
		"in_flight", "latency_us", "sent", "answered", "timeouts", "retries"}
)

// TestStatusJSON: /status.json carries every documented key, each server's
// state (s1 up, s2 draining, s3 stopped and so down), and counts a request
// sent through the proxy.
func TestStatusJSON(t *testing.T) {
	c, web := startDashboard(t)
	c.Servers[1].Running().Drain()
	if err := c.Servers[2].Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	post(t, web.URL+"/calc", `{"expr": "1 + 1"}`) // a reply to count
	var doc map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		doc = nil
		getJSON(t, web.URL+"/status.json", &doc)
		if allReported(doc, c.Servers[2].CalcAddr.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the servers never all reported: %v", doc)
		}
		time.Sleep(20 * time.Millisecond) // a poll interval is 100 ms
	}
	for _, k := range proxyKeys {
		if _, ok := doc[k]; !ok {
			t.Errorf("the proxy has no %q: %v", k, doc)
		}
	}
	if doc["replies"].(float64) < 1 {
		t.Errorf("replies %v, want at least the one /calc asked for", doc["replies"])
	}
	states := map[string]string{}
	for _, s := range doc["servers"].([]any) {
		m := s.(map[string]any)
		for _, k := range serverKeys {
			if _, ok := m[k]; !ok {
				t.Errorf("server %v has no %q", m["name"], k)
			}
		}
		states[m["calc_addr"].(string)] = m["state"].(string)
		if m["state_reason"] == "" || (m["has_report"] == true) != (m["cores"] != nil) {
			t.Errorf("server %v: no reason, or cores and has_report disagree: %v", m["name"], m)
		}
	}
	// By address: s3 may have stopped before its first report, and then
	// has no name but that.
	want := map[string]string{c.Servers[0].CalcAddr.String(): "up", c.Servers[1].CalcAddr.String(): "draining",
		c.Servers[2].CalcAddr.String(): "down"}
	for name, st := range want {
		if states[name] != st {
			t.Errorf("states %v, want %v", states, want)
			break
		}
	}
}

// TestStatusBuild: /status.json says the build and the uptime the header
// shows: those given, or by default the binary's own and the process's.
func TestStatusBuild(t *testing.T) {
	b := cli.Build()
	hourAgo := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name            string
		cfg             dashboard.Config
		version, commit string
		minUp, maxUp    float64
	}{
		{"given", dashboard.Config{Version: "v9.9.9", Commit: "abc", Started: hourAgo}, "v9.9.9", "abc", 3600, 3700},
		{"defaults", dashboard.Config{}, b.Version, b.Commit, 0, time.Since(cli.Started()).Seconds() + 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web := httptest.NewServer(dashboard.NewWithConfig(noStats{}, tc.cfg))
			defer web.Close()
			var doc map[string]any
			getJSON(t, web.URL+"/status.json", &doc)
			up, _ := doc["uptime_seconds"].(float64)
			if doc["version"] != tc.version || doc["commit"] != tc.commit || up < tc.minUp || up > tc.maxUp {
				t.Fatalf("version %v, commit %v, uptime %v; want %s, %s, %v to %v s", doc["version"], doc["commit"],
					doc["uptime_seconds"], tc.version, tc.commit, tc.minUp, tc.maxUp)
			}
			if _, ok := doc["servers"].([]any); !ok {
				t.Fatalf("the proxy's own keys are gone: %v", doc)
			}
		})
	}
}

// allReported says whether s1 and s2 have reported, s2 that it drains, and
// the proxy has taken s3 (which may never have reported, and so has no name
// but its address) out of rotation.
func allReported(doc map[string]any, s3 string) bool {
	servers, _ := doc["servers"].([]any)
	if len(servers) != 3 {
		return false
	}
	for _, s := range servers {
		m := s.(map[string]any)
		switch {
		case m["calc_addr"] == s3:
			if m["up"] != false {
				return false
			}
		case m["has_report"] != true, m["name"] == "s2" && m["draining"] != true:
			return false
		}
	}
	return true
}

// post sends body to url as JSON and decodes the answer.
func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	return postAs(t, url, "application/json", body)
}

// postAs sends body to url with the Content-Type ctype (none if empty) and
// decodes the answer.
func postAs(t *testing.T, url, ctype, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("POST %s %s: %s, not JSON: %v", url, body, resp.Status, err)
	}
	return resp.StatusCode, a
}

// TestCalc: /calc computes through the proxy and says which server did,
// and reports errors of every kind as JSON.
func TestCalc(t *testing.T) {
	_, web := startDashboard(t)
	server := regexp.MustCompile(`^s[123]$`)
	for _, tc := range []struct {
		body   string
		code   int
		result string
		err    string
	}{
		{`{"expr": "6 * 7"}`, 200, "42", ""},
		{`{"expr": "7 / 2"}`, 200, "3.5", ""},
		{`{"expr": "1 / 0"}`, 200, "", "division by zero"},
		{`{"expr": "2 +"}`, 400, "", "syntax error"},
		{`{"expr": " "}`, 400, "", "no expression"},
		{`{"expr": "6 * 7"`, 400, "", "not {"},
		{`6 * 7`, 200, "42", ""},
	} {
		t.Run(tc.body, func(t *testing.T) {
			code, a := post(t, web.URL+"/calc", tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, a)
			}
			if tc.result != "" {
				if a["result"] != tc.result || !server.MatchString(a["server"].(string)) {
					t.Fatalf("answer %v, want %s from s1, s2 or s3", a, tc.result)
				}
				if id, _ := a["id"].(string); len(id) != 16 || a["latency_us"] == nil {
					t.Fatalf("answer %v: want a 16-digit id and a latency", a)
				}
				return
			}
			if e, _ := a["error"].(string); !strings.Contains(e, tc.err) || a["result"] != nil {
				t.Fatalf("answer %v, want an error with %q", a, tc.err)
			}
		})
	}
}

// TestCalcBodies: /calc reads JSON, a form or a plain-text expression by
// what the body holds, whatever the Content-Type says (curl -d says a form
// whatever it sends; a script may say nothing).
func TestCalcBodies(t *testing.T) {
	_, web := startDashboard(t)
	const form, json, text = "application/x-www-form-urlencoded", "application/json", "text/plain"
	for _, tc := range []struct {
		ctype, body string
		code        int
		result, err string
	}{
		{json, `{"expr": "6 * 7"}`, 200, "42", ""},
		{"", `{"expr": "6 * 7"}`, 200, "42", ""},                       // fetch or a script with no type
		{form, `{"expr": "6 * 7"}`, 200, "42", ""},                     // curl -d '{"expr": ...}'
		{text, `{"expr": "6 * 7"}`, 200, "42", ""},                     // fetch with a string body
		{form, `6 * 7`, 200, "42", ""},                                 // curl -d '6 * 7'
		{form, "6+7\n", 200, "13", ""},                                 // curl -d: no "=", so text, + kept
		{"", `7 / 2`, 200, "3.5", ""},                                  // plain text
		{form, `expr=6%2B7`, 200, "13", ""},                            // a form: %2B is +
		{form, `expr=6+*+7`, 200, "42", ""},                            // a form: + is a space
		{"", `a=1&expr=2+-+5`, 200, "-3", ""},                          // a form with no type
		{form, `expr=6+7`, 400, "", "syntax error"},                    // + is a space: "6 7"
		{form, `a=1`, 400, "", "no expression"},                        // a form without expr
		{form, `expr=%zz`, 400, "", "not a form"},                      // bad encoding
		{json, `{"expr": 42}`, 400, "", "not {"},                       // not a string
		{"", ``, 400, "", "no expression"},                             // nothing
		{text, strings.Repeat("1", 5000), 413, "", "over 4096 bytes"},  // more than an expression needs
		{text, "9223372036854775808 + 1", 200, "", "integer overflow"}, // an answer, not a bad request
		{json, `{"expr": "1 + 9223372036854775807"}`, 200, "", "integer overflow"},
	} {
		t.Run(tc.ctype+" "+tc.body[:min(len(tc.body), 40)], func(t *testing.T) {
			code, a := postAs(t, web.URL+"/calc", tc.ctype, tc.body)
			e, _ := a["error"].(string)
			if code != tc.code || a["result"] != nilIfEmpty(tc.result) || (tc.err == "") != (e == "") ||
				!strings.Contains(e, tc.err) {
				t.Fatalf("%d %v, want %d, result %q, error with %q", code, a, tc.code, tc.result, tc.err)
			}
		})
	}
}

// nilIfEmpty is what a decoded answer holds for an omitted string.
func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestCalcAsTheTextForm: for an expression the text form refuses with an
// answer (an operand beyond int64) or computes into an error, /calc gives
// the message and code the proxy's client port gives, with 200: both are
// answers of the system.
func TestCalcAsTheTextForm(t *testing.T) {
	c, web := startDashboard(t)
	for _, tc := range []struct {
		expr string
		code int // codec.Code
	}{
		{"9223372036854775808 + 1", 6},  // parsed: beyond int64
		{"-9223372036854775809 * 2", 6}, // parsed: beyond int64
		{"9223372036854775807 + 1", 6},  // computed: the sum overflows
		{"1 / 0", 5},
		{"1e400 + 1", 8},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			text := textCommand(t, c.ProxyAddr.String(), tc.expr)
			code, a := post(t, web.URL+"/calc", `{"expr": "`+tc.expr+`"}`)
			e, _ := a["error"].(string)
			if code != http.StatusOK || a["code"] != float64(tc.code) || a["result"] != nil {
				t.Fatalf("/calc %d %v, want 200 and code %d", code, a, tc.code)
			}
			// The text form may shorten a message to fit its bound on
			// amplification ("error: integer overflow"): /calc's starts
			// the same way.
			if !strings.HasPrefix("error: "+e, text) {
				t.Fatalf("/calc says %q, the proxy's text form %q", e, text)
			}
		})
	}
}

// TestCalcForm: a form post works as well as JSON, for curl users.
func TestCalcForm(t *testing.T) {
	_, web := startDashboard(t)
	resp, err := http.PostForm(web.URL+"/calc", map[string][]string{"expr": {"2 + 3"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a["result"] != "5" {
		t.Fatalf("answer %v (%v), want 5", a, err)
	}
}

// TestCalcAnyPort: a dashboard given the proxy's address as configured,
// port 0 (udpproxy -addr 127.0.0.1:0) or none, sends to the port the
// proxy took.
func TestCalcAnyPort(t *testing.T) {
	c, _ := startDashboard(t)
	for _, addr := range []string{"127.0.0.1:0", ""} {
		web := httptest.NewServer(dashboard.New(c.Proxy, addr))
		code, a := post(t, web.URL+"/calc", `{"expr": "6 * 7"}`)
		web.Close()
		if code != http.StatusOK || a["result"] != "42" {
			t.Errorf("dashboard for %q: %d %v, want 42", addr, code, a)
		}
	}
}

// TestCalcNoProxy: with nothing on the proxy's port the answer is an error
// naming the address, well before the browser would give up.
func TestCalcNoProxy(t *testing.T) {
	web := httptest.NewServer(dashboard.New(noStats{}, "127.0.0.1:9")) // discard: nobody listens
	defer web.Close()
	start := time.Now()
	code, a := post(t, web.URL+"/calc", `{"expr": "1 + 1"}`)
	if e, _ := a["error"].(string); code != http.StatusGatewayTimeout || !strings.Contains(e, "127.0.0.1:9") {
		t.Fatalf("%d %v, want 504 and an error naming 127.0.0.1:9", code, a)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestRoutes: the page, its assets, and what is not there.
func TestRoutes(t *testing.T) {
	_, web := startDashboard(t)
	for _, tc := range []struct {
		method, path string
		code         int
		ctype, body  string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script src="dashboard/app.js">`},
		{"GET", "/dashboard/app.js", 200, "text/javascript; charset=utf-8", "status.json"},
		{"GET", "/dashboard/style.css", 200, "text/css; charset=utf-8", "font"},
		{"HEAD", "/status.json", 200, "application/json", ""},
		{"GET", "/calc", 405, "", ""},
		{"POST", "/status.json", 405, "", ""},
		{"GET", "/nothing", 404, "", ""},
		{"GET", "/dashboard/missing.js", 404, "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, web.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s, want %d", resp.Status, tc.code)
			}
			if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.ctype)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
		})
	}
}
