package cli

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBuildInfoMetric: every endpoint's /metrics carries
// discal_build_info with the version, commit and Go release Build reports,
// and the value 1.
func TestBuildInfoMetric(t *testing.T) {
	for _, tc := range []struct {
		name, version, commit string
	}{
		{"from the module", "", ""},
		{"set at build time", "v1.2.3", "0123456789abcdef0123456789abcdef01234567"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldV, oldC := Version, Commit
			Version, Commit = tc.version, tc.commit
			t.Cleanup(func() { Version, Commit = oldV, oldC })
			b := Build()
			if b.Go != runtime.Version() || b.Version == "" || b.Commit == "" ||
				(tc.version != "" && b.Version != tc.version) || (tc.commit != "" && b.Commit != tc.commit) {
				t.Fatalf("Build() = %+v, want Go %s, version %q, commit %q", b, runtime.Version(), tc.version, tc.commit)
			}
			h, err := NewHTTP("udpx", nil)
			if err != nil {
				t.Fatal(err)
			}
			addr, err := h.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer h.Stop()
			code, body := get(t, "http://"+addr.String()+"/metrics")
			// The exposition format sorts labels by name.
			want := `discal_build_info{commit="` + b.Commit + `",go="` + b.Go + `",version="` + b.Version + `"} 1`
			if code != 200 || !strings.Contains(body, want+"\n") {
				t.Fatalf("/metrics = %d, lacks %s:\n%s", code, want, grep(body, "build_info"))
			}
		})
	}
}

// grep returns the lines of s that hold word, for a failure message.
func grep(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStarted: the process's start is in the past and stays put.
func TestStarted(t *testing.T) {
	if s := Started(); s.IsZero() || s.After(time.Now()) || !s.Equal(Started()) {
		t.Fatalf("Started() = %v", s)
	}
}
