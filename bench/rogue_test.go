package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/internal/exclusive"
)

// runRogueJSON runs a -rogue mode with a light load and returns its report.
// A missed target is no failure here: the throughput ratio moves with the
// machine's load; each test checks the figures that do not.
func runRogueJSON(t *testing.T, rc rogueConfig) rogueReport {
	t.Helper()
	if testing.Short() {
		t.Skip("builds udpproxy and starts processes")
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rc.rounds, rc.asJSON, rc.out = 1, true, &out
	rc.load = flood.Config{Duration: 2 * time.Second, InFlight: 16, NoGSO: true}
	if err := runRogue(ctx, rc); err != nil && !errors.Is(err, errTargetMissed) {
		t.Fatalf("runRogue: %v\n%s", err, out.String())
	}
	var rep rogueReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	return rep
}

// TestRogueBlackhole: a rogue that claims every core and never answers is
// ejected, gets no first tries after the first second, and costs no
// request its answer.
func TestRogueBlackhole(t *testing.T) {
	exclusive.Quiet(t)
	rep := runRogueJSON(t, rogueConfig{mode: "blackhole", cores: 1 << 20})
	if len(rep.Runs) != 2 || len(rep.Checks) != 2 {
		t.Fatalf("%d runs, %d checks; want 2 and 2: %+v", len(rep.Runs), len(rep.Checks), rep)
	}
	for _, r := range rep.Runs {
		if r.OK == 0 || r.Wrong != 0 || r.Timeouts != 0 {
			t.Errorf("run with rogue %v: ok %d, wrong %d, timeouts %d; want answers, none wrong or lost", r.WithRogue, r.OK, r.Wrong, r.Timeouts)
		}
		if r.WithRogue && (r.Ejections < 1 || r.FirstShare > maxFirstShare) {
			t.Errorf("with the rogue: %v ejections, %.2f%% of first tries after 1s; want ejected and under %v%%", r.Ejections, r.FirstShare, maxFirstShare)
		}
		if !r.WithRogue && r.Ejections != 0 {
			t.Errorf("without the rogue: %v ejections of it", r.Ejections)
		}
	}
	if !rep.Checks[0].Pass {
		t.Errorf("check %+v failed", rep.Checks[0])
	}
}

// TestRogueHalfdead: a calculator port that dies is ejected within a
// second under load and back within two of answering again.
func TestRogueHalfdead(t *testing.T) {
	exclusive.Quiet(t)
	rep := runRogueJSON(t, rogueConfig{mode: "halfdead", outage: 1500 * time.Millisecond})
	if len(rep.Outages) != 1 {
		t.Fatalf("%d outages; want 1: %+v", len(rep.Outages), rep)
	}
	o := rep.Outages[0]
	if !o.Ejected || o.EjectMS > ms(maxEjectAfter) || !o.Back || o.BackMS > ms(maxBackAfter) {
		t.Errorf("ejected %v after %.0f ms, back %v after %.0f ms; want within %v and %v", o.Ejected, o.EjectMS, o.Back, o.BackMS, maxEjectAfter, maxBackAfter)
	}
	if o.Wrong != 0 || o.RPS <= 0 {
		t.Errorf("%v req/s, %d wrong; want answers and none wrong", o.RPS, o.Wrong)
	}
	for _, c := range rep.Checks {
		if !c.Pass {
			t.Errorf("check %+v failed", c)
		}
	}
}

// TestRogueStall: a server stopped 100 ms at a time holds up the requests
// sent to it for the stall unless they are hedged; hedged, the copies
// answer first, and nothing is lost either way.
func TestRogueStall(t *testing.T) {
	exclusive.Quiet(t)
	rep := runRogueJSON(t, rogueConfig{mode: "stall"})
	if len(rep.Stalls) != 3 || len(rep.Checks) != 3 {
		t.Fatalf("%d runs, %d checks; want 3 and 3: %+v", len(rep.Stalls), len(rep.Checks), rep)
	}
	for _, r := range rep.Stalls {
		if r.OK == 0 || r.Wrong != 0 || r.Timeouts != 0 || r.Errors != 0 {
			t.Errorf("stall %v, hedging %v: ok %d, wrong %d, errors %d, timeouts %d; want answers, none wrong or lost",
				r.Stall, r.Hedging, r.OK, r.Wrong, r.Errors, r.Timeouts)
		}
		switch {
		case r.Stall && r.Hedging && r.HedgeWins == 0:
			t.Errorf("with stalls and hedging: %v hedges, none answered first", r.Hedges)
		case r.Stall && !r.Hedging && (r.Hedges != 0 || r.Max < us(stallFor/2)):
			t.Errorf("with stalls and no hedging: %v hedges, the slowest answer %.0f us; want none, and one that waited out a stall", r.Hedges, r.Max)
		}
	}
}

func TestParseRogueMode(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{{"blackhole", true}, {"halfdead", true}, {"slow", true}, {"stall", true}, {"", false}, {"Blackhole", false}, {"down", false}} {
		if err := parseRogueMode(c.in); (err == nil) != c.ok {
			t.Errorf("parseRogueMode(%q) = %v; want ok %v", c.in, err, c.ok)
		}
	}
}

func TestLabelValue(t *testing.T) {
	labels := `addr="127.0.0.1:7001",server="s1"`
	for key, want := range map[string]string{"addr": "127.0.0.1:7001", "server": "s1", "reason": ""} {
		if got := labelValue(labels, key); got != want {
			t.Errorf("labelValue(%q) = %q; want %q", key, got, want)
		}
	}
}
