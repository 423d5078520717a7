package e2e

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/internal/exclusive"
)

var proxyLine = regexp.MustCompile(`pending=(\d+) .* goroutines=(\d+)`)

func proxyCounts(t *testing.T, proxy string) (pending, goroutines int) {
	t.Helper()
	m := proxyLine.FindStringSubmatch(exchangeText(t, proxy, "stats\n"))
	if m == nil {
		t.Fatal("no counts in the proxy's stats")
	}
	pending, _ = strconv.Atoi(m[1])
	goroutines, _ = strconv.Atoi(m[2])
	return pending, goroutines
}

// TestSoak sends 1,000,000 requests through a udpproxy process: afterwards
// nothing is pending, the proxy runs as many goroutines as before, and its
// resident memory stays under 64 MiB.
//
//	go test -run TestSoak -v ./e2e
func TestSoak(t *testing.T) {
	exclusive.CPU(t)
	if testing.Short() {
		t.Skip("a million requests: not in -short")
	}
	s := startSystem(t)
	waitReported(t, s.proxy, "reports from every server", func(map[string]float64) bool { return true })
	_, before := proxyCounts(t, s.proxy)
	pid := s.proxyP.cmd.Process.Pid
	rss0 := rssKB(t, pid)

	began := time.Now()
	res, err := flood.Run(context.Background(), flood.Config{Targets: []string{s.proxy}, Requests: 1_000_000, InFlight: 128})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 1_000_000 || res.Wrong != 0 || res.Timeouts != 0 || res.Errors != 0 {
		t.Fatalf("ok %d, wrong %d, timeouts %d, errors %d of 1,000,000", res.OK, res.Wrong, res.Timeouts, res.Errors)
	}
	pending, after := proxyCounts(t, s.proxy)
	rss := rssKB(t, pid)
	t.Logf("1,000,000 requests in %v (%.0f/s): pending %d, goroutines %d before and %d after, proxy RSS %d kB before and %d kB after",
		time.Since(began).Round(time.Millisecond), res.RPS, pending, before, after, rss0, rss)
	if pending != 0 {
		t.Errorf("%d requests still pending", pending)
	}
	if after != before {
		t.Errorf("the proxy ran %d goroutines before and %d after", before, after)
	}
	if rss > 64*1024 {
		t.Errorf("the proxy's resident memory is %d kB, over 64 MiB", rss)
	}
}
