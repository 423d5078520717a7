package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
)

// The balance tests judge shares of the work, and a busy machine moves
// them. A neighbour that takes the CPU starves the burner (-burn is a duty
// cycle in wall-clock time), so the burned server really is less busy
// while the neighbour runs, and least-load is right to give it more:
// beside a process that kept a core busy 0.7 s of every 2 s, the burned
// server got 12.1% of 20,000 requests (about 2.5 s) where the test wanted
// under 10%, and 25% of the second after "burn 0.8" where it wanted under
// 15%. So the burn tests raise the system above its neighbours where they
// may (exclusive.Raise), load it at a rate that leaves the burner room
// (burnLoad), judge over seconds, and compare within their own run:
// least-load against round robin on the same servers, a server against
// its own share before the burn. Each margin was measured beside that
// neighbour, and each verdict seen to fail with the score's background
// term removed: the figures are beside the margins.

// startBalanceSystem runs three udpservers, the first with the extra flags
// given, and a least-load udpproxy in front of them, as real processes
// raised above the rest of the machine where the test may (exclusive.Raise),
// so that a burn of 0.8 of a core burns whatever starts beside it. The
// servers get two cores each (GOMAXPROCS=2) whatever the machine has: a
// burn of 0.8 of a core is then the same burden on a CI machine with 64
// cores as on this one with 2.
func startBalanceSystem(t *testing.T, firstFlags ...string) *system {
	t.Helper()
	s := &system{}
	for i := range 3 {
		flags := []string{"-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-name", fmt.Sprintf("s%d", i+1)}
		if i == 0 {
			flags = append(flags, firstFlags...)
		}
		p := startEnv(t, []string{"GOMAXPROCS=2"}, "udpserver", flags...)
		m := p.await(t, serverUp)
		exclusive.Raise(t, p.cmd.Process.Pid)
		s.servers = append(s.servers, p)
		s.calc = append(s.calc, m[2])
		s.status = append(s.status, m[3])
	}
	s.proxy = s.startProxy(t, "least-load")
	return s
}

// startProxy runs a udpproxy with the policy given in front of the
// system's servers, raised as they are, and returns its address.
func (s *system) startProxy(t *testing.T, policy string) string {
	t.Helper()
	args := []string{"-addr", "127.0.0.1:0", "-policy", policy}
	for i := range s.calc {
		args = append(args, "-server", s.calc[i]+","+s.status[i])
	}
	p := start(t, "udpproxy", args...)
	addr := p.await(t, proxyUp)[1]
	exclusive.Raise(t, p.cmd.Process.Pid)
	return addr
}

var procCPU = regexp.MustCompile(`(?m)^(s\d) \S+ up host_cpu=[\d.]+% proc_cpu=([\d.]+)%`)

// reportedProcCPU asks the proxy for what each server last reported.
func reportedProcCPU(t *testing.T, proxy string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range procCPU.FindAllStringSubmatch(exchangeText(t, proxy, "stats\n"), -1) {
		out[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	return out
}

// waitReported waits until the proxy's view of the servers satisfies ok.
func waitReported(t *testing.T, proxy, what string, ok func(map[string]float64) bool) {
	t.Helper()
	var cpu map[string]float64
	if !eventually.Within(15*time.Second, func() bool {
		cpu = reportedProcCPU(t, proxy)
		return len(cpu) == 3 && ok(cpu)
	}) {
		t.Fatalf("timed out waiting for %s; reports %v", what, cpu)
	}
}

// balanceLoad is the workload of TestEqualServersShareEvenly: a closed
// loop with a few requests in flight, as many interactive clients would
// keep.
func balanceLoad(proxy string) flood.Config {
	return flood.Config{Targets: []string{proxy}, InFlight: 8, Conns: 4, Timeline: 100 * time.Millisecond}
}

// burnLoad is the workload of the burn tests: an open loop at burnRate
// requests a second.
func burnLoad(proxy string, d time.Duration) flood.Config {
	cfg := balanceLoad(proxy)
	cfg.Rate, cfg.Duration = burnRate, d
	return cfg
}

// burnRate is a third of what balanceLoad's closed loop gets through
// here (10,000 requests a second). A closed loop runs flat out, and on two
// cores the test itself then leaves the burner little room: beside the
// bursts the burn shrank, and least-load gave the burned server 2 to 21%
// of ten seconds of work (mid-run, 12 to 26% of the burn's four seconds).
// At this rate the burn happens, and the verdict judges the balancing.
const burnRate = 3000

// runLoad floods with cfg and fails the test unless every request was
// answered right.
func runLoad(t *testing.T, cfg flood.Config) *flood.Result {
	t.Helper()
	res, err := flood.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAnswered(t, res)
	return res
}

func checkAnswered(t *testing.T, res *flood.Result) {
	t.Helper()
	if res.OK != res.Sent || res.OK == 0 {
		t.Fatalf("ok %d of %d (wrong %d, errors %d, timeouts %d)", res.OK, res.Sent, res.Wrong, res.Errors, res.Timeouts)
	}
}

func share(counts map[string]uint64, name string) float64 {
	var total uint64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(counts[name]) / float64(total)
}

// window sums a timeline's answers per server from from to to.
func window(tl []flood.Bucket, from, to time.Duration) map[string]uint64 {
	sum := map[string]uint64{}
	for _, b := range tl {
		if b.Start >= from && b.Start < to {
			for k, v := range b.PerServer {
				sum[k] += v
			}
		}
	}
	return sum
}

// logSeconds logs a server's share in each second of a timeline, for a
// verdict that failed.
func logSeconds(t *testing.T, tl []flood.Bucket, name string) {
	t.Helper()
	for from := time.Duration(0); len(tl) > 0 && from <= tl[len(tl)-1].Start; from += time.Second {
		sum := window(tl, from, from+time.Second)
		t.Logf("from %v: %s %.1f%% of %v", from, name, 100*share(sum, name), sum)
	}
}

// burnedMargin is the most least-load may give a server burning 0.8 of a
// core, as a part of what round robin gives it on the same servers (a
// third), over burnedRun. Measured under -race beside the bursts and a
// compiler (a neighbour building and testing two packages in a loop),
// least-load gave it 1.8 to 5.8% in five runs, at most 0.17 of round
// robin's 33.3%; not raised, 22 to 25% in three, the neighbours' verdict
// (beside the bursts alone, 1.1 to 7.2%). With the background term
// removed from the score, 27.1 to 32.0% in six runs, raised or not, at
// least 0.81.
const (
	burnedMargin = 1.0 / 3
	burnedRun    = 10 * time.Second
)

// TestBurnedServerGetsLittle: over ten seconds, a server started with
// -burn 0.8 gets under a third of the share of the work that round robin
// gives it on the same servers.
func TestBurnedServerGetsLittle(t *testing.T) {
	exclusive.Quiet(t)
	s := startBalanceSystem(t, "-burn", "0.8")
	waitReported(t, s.proxy, "the burn to show in s1's reports", func(c map[string]float64) bool { return c["s1"] >= 40 })
	ll := runLoad(t, burnLoad(s.proxy, burnedRun))
	// Round robin after least-load, not in turns: a proxy counts the
	// work another sends as background on every server, and least-load
	// then spreads its own more evenly.
	rr := runLoad(t, burnLoad(s.startProxy(t, "round-robin"), 2*time.Second))
	llShare, rrShare := share(ll.PerServer, "s1"), share(rr.PerServer, "s1")
	t.Logf("s1's share: least-load %.1f%% of %d, round robin %.1f%% of %d", 100*llShare, ll.OK, 100*rrShare, rr.OK)
	if rrShare < 0.3 {
		t.Fatalf("round robin gave the burned server %.1f%%, want its third: %v", 100*rrShare, rr.PerServer)
	}
	if llShare >= burnedMargin*rrShare {
		t.Errorf("least-load gave the burned server %.1f%% of the requests, round robin %.1f%%: want under %.0f%% of that",
			100*llShare, 100*rrShare, 100*burnedMargin)
		logSeconds(t, ll.Timeline, "s1")
	}
}

// TestEqualServersShareEvenly: three equal servers, 20,000 requests: no
// server gets more than 1.3 times the share of another, and within no poll
// interval (100 ms) does one server get more than 60%.
func TestEqualServersShareEvenly(t *testing.T) {
	exclusive.Quiet(t)
	s := startBalanceSystem(t)
	waitReported(t, s.proxy, "reports from every server", func(map[string]float64) bool { return true })
	cfg := balanceLoad(s.proxy)
	cfg.Requests = 20000
	res := runLoad(t, cfg)
	t.Logf("shares %v", res.PerServer)
	lo, hi := uint64(1<<63), uint64(0)
	for _, name := range []string{"s1", "s2", "s3"} {
		lo, hi = min(lo, res.PerServer[name]), max(hi, res.PerServer[name])
	}
	if float64(hi) > 1.3*float64(lo) {
		t.Errorf("shares %v: the largest is %.2f times the smallest, want at most 1.3", res.PerServer, float64(hi)/float64(lo))
	}
	herd(t, res.Timeline)
}

// herd fails if, in any 100 ms bucket with enough answers to judge, one
// server got more than 60% of them. Enough is 30, and half the answers of
// the run's median bucket: in a bucket in which the system answered at
// half its usual rate or less, the machine had stalled it, and whose
// answers came through says what the scheduler ran, not what the proxy
// chose (a full run of the suite, other work stalling the machine, had
// buckets of 61 and 50 answers, 87 and 90% from one server, where the
// 20,000 answers came at an even 33% each).
func herd(t *testing.T, tl []flood.Bucket) {
	t.Helper()
	if len(tl) == 0 {
		t.Fatal("no timeline to judge")
	}
	totals := make([]uint64, len(tl))
	for i, b := range tl {
		for _, n := range b.PerServer {
			totals[i] += n
		}
	}
	floor := max(30, slices.Sorted(slices.Values(totals))[len(totals)/2]/2)
	worst, stalled := 0.0, 0
	for i, b := range tl {
		if totals[i] < floor {
			stalled++
			continue
		}
		for name, n := range b.PerServer {
			sh := float64(n) / float64(totals[i])
			worst = max(worst, sh)
			if sh > 0.60 {
				t.Errorf("in the 100 ms from %v, %s got %.0f%% of %d answers: %v", b.Start, name, 100*sh, totals[i], b.PerServer)
			}
		}
	}
	t.Logf("largest share in any 100 ms: %.0f%%; %d of %d buckets under %d answers not judged", 100*worst, stalled, len(tl), floor)
}

// The schedule and margins of TestBurnMidRun, whose yardstick is s1's
// share in the seconds before the burn (a third). The burn lasts twice the
// period of the bursts the margins were measured beside, and is judged
// whole, the proxy's reaction included: a burst right after "burn 0.8"
// starves the burner while it lasts, and in the second after the command
// s1 kept 29 and 34% of the work in two runs. Measured under -race beside
// the bursts and a compiler, against 32 to 34% before: over the burn 1.0
// to 6.9% in five runs, at most 0.21 of it (not raised, 14.5 to 25%); 1.5
// to 2.5 s after "burn 0", 32.0 to 33.7%, at least 0.98. With the
// background term removed, over the burn 28.7 to 32.4% in six runs,
// raised or not, at least 0.88.
const (
	midBurnMargin = 1.0 / 2 // over the burn, at most
	midBackMargin = 1.0 / 2 // 1.5 to 2.5 s after burn 0, at least
	midBurnAt     = 2 * time.Second
	midCoolAt     = 6 * time.Second
	midRun        = 9 * time.Second
	midSettled    = 500 * time.Millisecond // before the burn, from when the first reports have settled
	midBackFrom   = 1500 * time.Millisecond
	midBackUntil  = 2500 * time.Millisecond
)

// TestBurnMidRun: "burn 0.8" sent to one server mid-run: over the four
// seconds until "burn 0", the proxy's reaction included, its share is
// under half what it was before the burn; 1.5 to 2.5 s after "burn 0" it
// is back at work, with at least half its share before.
func TestBurnMidRun(t *testing.T) {
	exclusive.Quiet(t)
	s := startBalanceSystem(t)
	waitReported(t, s.proxy, "reports from every server", func(map[string]float64) bool { return true })
	cfg := burnLoad(s.proxy, midRun)
	type result struct {
		res *flood.Result
		err error
	}
	done := make(chan result, 1)
	begin := time.Now()
	go func() {
		res, err := flood.Run(context.Background(), cfg)
		done <- result{res, err}
	}()
	command := func(at time.Duration, cmd string) time.Duration {
		time.Sleep(time.Until(begin.Add(at))) // the schedule of the scenario, not a wait for a result
		if got := exchangeText(t, s.status[0], cmd+"\n"); !strings.HasPrefix(got, "ok: "+cmd) {
			t.Errorf("%q answered %q", cmd, got)
		}
		return time.Since(begin)
	}
	burnAt := command(midBurnAt, "burn 0.8")
	coolAt := command(midCoolAt, "burn 0")
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkAnswered(t, r.res)
	tl := r.res.Timeline
	before := share(window(tl, midSettled, burnAt), "s1")
	burning := share(window(tl, burnAt, coolAt), "s1")
	back := share(window(tl, coolAt+midBackFrom, coolAt+midBackUntil), "s1")
	t.Logf("s1's share: %.1f%% before the burn, %.1f%% from burn 0.8 to burn 0, %.1f%% 1.5 to 2.5 s after burn 0",
		100*before, 100*burning, 100*back)
	if burning >= midBurnMargin*before {
		t.Errorf("from burn 0.8 to burn 0, s1 got %.1f%%, want under %.0f%% of its %.1f%% before", 100*burning, 100*midBurnMargin, 100*before)
	}
	if back < midBackMargin*before {
		t.Errorf("1.5 to 2.5 s after burn 0, s1 got %.1f%%, want it back at work with at least %.0f%% of its %.1f%% before",
			100*back, 100*midBackMargin, 100*before)
	}
	if t.Failed() {
		logSeconds(t, tl, "s1")
	}
}
