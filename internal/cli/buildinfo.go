package cli

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Commit is set at build time with
// -ldflags "-X github.com/discal/discal/internal/cli.Commit=$(git rev-parse HEAD)"
// where the go command records none (a build outside the checkout, as in a
// container, or with -buildvcs=false); otherwise it comes from the build
// information.
var Commit = ""

// BuildInfo is what a binary was built from, for /metrics and the
// dashboard.
type BuildInfo struct {
	Version string // Version if set at build time, else the module's version, else "(devel)"
	Commit  string // Commit if set at build time, else the VCS revision the go command recorded, else "unknown"
	Go      string // the Go release that built it: "go1.26.0"
}

// Build returns what this binary was built from. A binary built by
// `go build` inside a git checkout records its commit; `go test` and
// `go run` do not, and say "unknown".
func Build() BuildInfo {
	b := BuildInfo{Version: Version, Commit: Commit, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if b.Version == "" {
		b.Version = "(devel)"
		if ok && bi.Main.Version != "" {
			b.Version = bi.Main.Version
		}
	}
	for i := 0; ok && b.Commit == "" && i < len(bi.Settings); i++ {
		if s := bi.Settings[i]; s.Key == "vcs.revision" {
			b.Commit = s.Value
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// started is when the process started, near enough: package variables are
// set before main runs.
var started = time.Now()

// Started returns when the process started, for an uptime.
func Started() time.Time { return started }

// buildInfoCollector is discal_build_info{version,commit,go} 1, the series
// every Prometheus exporter has, so that a dashboard can join any metric
// to the build that produced it.
func buildInfoCollector() prometheus.Collector {
	b := Build()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "discal_build_info",
		Help:        "Always 1; the labels say what the binary was built from.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "go": b.Go},
	})
	g.Set(1)
	return g
}
