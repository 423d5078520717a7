package dashboard_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/discal/discal/udpproxy/dashboard"
)

// serve sends one request to d and returns the code and the error the
// answer holds, if any.
func serve(t *testing.T, d http.Handler, method, path, host string, header map[string]string, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, req)
	var a struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &a) // the page is HTML: no error to read
	return rec.Code, a.Error
}

// TestHostRule: the page, /status.json and /calc answer a Host that is an
// IP literal, localhost or a name under it, or a name the operator listed
// (in any case, with a port or a trailing dot); any other name is refused
// with 403 and a reason that says how to allow it: what DNS rebinding
// sends is the attacker's own name.
func TestHostRule(t *testing.T) {
	d := dashboard.NewWithConfig(noStats{}, dashboard.Config{CalcAddr: "127.0.0.1:9", Hosts: []string{"Proxy.Example.", "calc.internal:9100"}})
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:9100", true},
		{"127.0.0.1", true},
		{"10.0.0.5:80", true},
		{"[::1]:9100", true},
		{"[::1]", true},
		{"[fe80::1%25eth0]:9100", true},
		{"localhost:9100", true},
		{"LOCALHOST", true},
		{"dashboard.localhost:9100", true},
		{"proxy.example:9100", true},
		{"PROXY.EXAMPLE.", true},
		{"calc.internal", true},
		{"evil.example:9100", false},
		{"evil.example", false},
		{"proxy.example.evil.example", false},
		{"localhost.evil.example", false},
		{"127.0.0.1.nip.io:9100", false},
		{"2130706433", false}, // 127.0.0.1 to a browser, but not written as an address
		{"", false},
	} {
		for _, path := range []string{"/", "/status.json"} {
			t.Run(tc.host+path, func(t *testing.T) {
				code, e := serve(t, d, "GET", path, tc.host, nil, "")
				if tc.ok != (code == http.StatusOK) || (!tc.ok && (code != http.StatusForbidden || !strings.Contains(e, "-http-host"))) {
					t.Fatalf("GET %s with Host %q = %d %q; want allowed %v, else 403 naming -http-host", path, tc.host, code, e, tc.ok)
				}
			})
		}
		t.Run(tc.host+"/calc", func(t *testing.T) {
			// "2 +" is a syntax error: 400 once past the guard, with no
			// proxy needed.
			code, e := serve(t, d, "POST", "/calc", tc.host, nil, "2 +")
			if tc.ok != (code == http.StatusBadRequest) || (!tc.ok && code != http.StatusForbidden) {
				t.Fatalf("POST /calc with Host %q = %d %q; want allowed %v", tc.host, code, e, tc.ok)
			}
		})
	}
}

// TestOriginRule: /calc refuses a POST a browser sent for another web site
// (Sec-Fetch-Site cross-site or same-site, or an Origin that is not the
// Host), such as a form on a page elsewhere; it takes the page's own, one
// the user typed, and clients that are not browsers. Reading the status
// is not guarded by origin: a browser does not let another site read the
// answer.
func TestOriginRule(t *testing.T) {
	d := dashboard.New(noStats{}, "127.0.0.1:9")
	const host = "127.0.0.1:9100"
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	with := func(kv ...string) map[string]string {
		h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		header map[string]string
		code   int
	}{
		{"curl", "POST", "/calc", form, 400},
		{"the page itself", "POST", "/calc", with("Sec-Fetch-Site", "same-origin", "Origin", "http://"+host), 400},
		{"typed by the user", "POST", "/calc", with("Sec-Fetch-Site", "none"), 400},
		{"an old browser, same origin", "POST", "/calc", with("Origin", "http://"+host), 400},
		{"a form on another site", "POST", "/calc", with("Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"), 403},
		{"a sibling site", "POST", "/calc", with("Sec-Fetch-Site", "same-site", "Origin", "http://other.localhost"), 403},
		{"an old browser, another site", "POST", "/calc", with("Origin", "https://evil.example"), 403},
		{"an old browser, another port", "POST", "/calc", with("Origin", "http://127.0.0.1:8080"), 403},
		{"reading the status", "GET", "/status.json", with("Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, e := serve(t, d, tc.method, tc.path, host, tc.header, "expr=2+%2B")
			if code != tc.code || (code == 403 && !strings.Contains(e, "cross-origin")) {
				t.Fatalf("%s %s with %v = %d %q, want %d", tc.method, tc.path, tc.header, code, e, tc.code)
			}
		})
	}
}
