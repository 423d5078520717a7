package main

import (
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestPrintComparison checks the medians, the ratios against direct and
// against the best nginx, and that a wrong answer fails the comparison.
func TestPrintComparison(t *testing.T) {
	runs := func(rps ...float64) []compareRun {
		var rs []compareRun
		for _, r := range rps {
			rs = append(rs, compareRun{rps: r, p50: 100, p99: 900, cpuPerReq: 2, serverCPU: 1.5, benchCPU: 1})
		}
		return rs
	}
	cs := []*contender{
		{name: "direct", runs: runs(1000, 900, 1100)},
		{name: "udpproxy", pid: 1, runs: runs(500, 450, 400)},
		{name: "hop (forwarding only)", pid: 2, runs: runs(600, 600, 600)},
		{name: "nginx 2 workers", pid: 3, runs: runs(200, 250, 300)},
		{name: "nginx 1 worker", pid: 4, runs: runs(100, 100, 100)},
	}
	var b strings.Builder
	if err := printComparison(&b, cs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"udpproxy  450  0.45x", // median 450 of direct's median 1000
		"udpproxy / best nginx (nginx 2 workers): 1.80x",
		"udpproxy / hop: 0.75x",
		"2.00  1.50  1.00  4.50", // proxy, servers, bench, all
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
	cs[1].runs[0].wrong = 3
	if err := printComparison(&b, cs); err == nil {
		t.Fatal("wrong answers did not fail the comparison")
	}
}
