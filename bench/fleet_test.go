package main

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/internal/exclusive"
)

// TestMain lets the test binary be a server process of the -fleet mode,
// as the bench binary is.
func TestMain(m *testing.M) {
	if spec := os.Getenv(fleetChildEnv); spec != "" {
		os.Exit(fleetChild(spec))
	}
	if spec := os.Getenv(rogueChildEnv); spec != "" {
		os.Exit(rogueChild(spec))
	}
	os.Exit(m.Run())
}

// TestFleet runs the -fleet mode at a tiny size, two servers in one
// process and one down entry, and checks the row it prints.
func TestFleet(t *testing.T) {
	exclusive.CPU(t)
	if testing.Short() {
		t.Skip("builds udpproxy and starts processes")
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := runFleet(ctx, fleetConfig{sizes: []int{2}, down: 1, perProc: 2, idle: 200 * time.Millisecond,
		load: flood.Config{Duration: 300 * time.Millisecond, InFlight: 16, NoGSO: true}, asJSON: true, out: &out})
	if err != nil {
		t.Fatalf("runFleet: %v\n%s", err, out.String())
	}
	var row fleetRow
	if err := json.Unmarshal([]byte(out.String()), &row); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if row.Servers != 2 || row.Down != 1 || row.Processes != 1 {
		t.Errorf("row says %d servers, %d down, %d processes; want 2, 1, 1", row.Servers, row.Down, row.Processes)
	}
	if row.OK == 0 || row.RPS <= 0 || row.Wrong != 0 {
		t.Errorf("ok %d, %v req/s, wrong %d: want answers and none wrong", row.OK, row.RPS, row.Wrong)
	}
	if row.ProxyCPU <= 0 || row.ServersCPU <= 0 {
		t.Errorf("CPU per request: proxy %v us, servers %v us; want both measured", row.ProxyCPU, row.ServersCPU)
	}
}

func TestParseSizes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{{"3", []int{3}}, {"3, 16,1000", []int{3, 16, 1000}}, {"", nil}, {"0", nil}, {"3,x", nil}, {"-1", nil}} {
		got, err := parseSizes(c.in)
		if (err != nil) != (c.want == nil) || !slices.Equal(got, c.want) {
			t.Errorf("parseSizes(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
