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
		name, version string
	}{
		{"from the module", ""},
		{"set at build time", "v1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := Version
			Version = tc.version
			t.Cleanup(func() { Version = old })
			b := Build()
			if b.Go != runtime.Version() || b.Commit == "" || (tc.version != "" && b.Version != tc.version) || b.Version == "" {
				t.Fatalf("Build() = %+v, want Go %s and version %q", b, runtime.Version(), tc.version)
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
