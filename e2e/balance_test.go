package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
)

// startBalanceSystem runs three udpservers, the first with the extra flags
// given, and a udpproxy in front of them, as real processes. The servers
// get two cores each (GOMAXPROCS=2) whatever the machine has: a burn of
// 0.8 of a core is then the same burden on a CI machine with 64 cores as
// on this one with 2.
func startBalanceSystem(t *testing.T, firstFlags ...string) *system {
	t.Helper()
	s := &system{}
	args := []string{}
	for i := range 3 {
		flags := []string{"-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-name", fmt.Sprintf("s%d", i+1)}
		if i == 0 {
			flags = append(flags, firstFlags...)
		}
		p := startEnv(t, []string{"GOMAXPROCS=2"}, "udpserver", flags...)
		m := p.await(t, serverUp)
		s.servers = append(s.servers, p)
		s.calc = append(s.calc, m[2])
		s.status = append(s.status, m[3])
		args = append(args, "-server", m[2]+","+m[3])
	}
	px := start(t, "udpproxy", append(args, "-addr", "127.0.0.1:0")...)
	s.proxy = px.await(t, proxyUp)[1]
	return s
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

// balanceLoad is the workload of these tests: a closed loop with a few
// requests in flight, as many interactive clients would keep.
func balanceLoad(proxy string) flood.Config {
	return flood.Config{Targets: []string{proxy}, InFlight: 8, Conns: 4, Timeline: 100 * time.Millisecond}
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

// TestBurnedServerGetsLittle: of 20,000 requests, a server started with
// -burn 0.8 receives under 10%.
func TestBurnedServerGetsLittle(t *testing.T) {
	exclusive.Quiet(t)
	s := startBalanceSystem(t, "-burn", "0.8")
	waitReported(t, s.proxy, "the burn to show in s1's reports", func(c map[string]float64) bool { return c["s1"] >= 40 })
	cfg := balanceLoad(s.proxy)
	cfg.Requests = 20000
	res, err := flood.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 20000 {
		t.Fatalf("ok %d of 20000 (wrong %d, errors %d, timeouts %d)", res.OK, res.Wrong, res.Errors, res.Timeouts)
	}
	t.Logf("shares %v", res.PerServer)
	if sh := share(res.PerServer, "s1"); sh >= 0.10 {
		t.Fatalf("the burned server got %.1f%% of the requests, want under 10%%: %v", 100*sh, res.PerServer)
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
	res, err := flood.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 20000 {
		t.Fatalf("ok %d of 20000", res.OK)
	}
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
// server got more than 60% of them.
func herd(t *testing.T, tl []flood.Bucket) {
	t.Helper()
	worst := 0.0
	for _, b := range tl {
		var total uint64
		for _, n := range b.PerServer {
			total += n
		}
		if total < 30 {
			continue
		}
		for name, n := range b.PerServer {
			sh := float64(n) / float64(total)
			worst = max(worst, sh)
			if sh > 0.60 {
				t.Errorf("in the 100 ms from %v, %s got %.0f%% of %d answers: %v", b.Start, name, 100*sh, total, b.PerServer)
			}
		}
	}
	t.Logf("largest share in any 100 ms: %.0f%%", 100*worst)
}

// TestBurnMidRun: "burn 0.8" sent to one server mid-run: over the following
// second its share is below 15%; after "burn 0" it gets work again within
// 2 seconds.
func TestBurnMidRun(t *testing.T) {
	exclusive.Quiet(t)
	s := startBalanceSystem(t)
	waitReported(t, s.proxy, "reports from every server", func(map[string]float64) bool { return true })
	cfg := balanceLoad(s.proxy)
	cfg.Duration = 6 * time.Second
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
	burnAt := command(1500*time.Millisecond, "burn 0.8")
	coolAt := command(3500*time.Millisecond, "burn 0")
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	window := func(from, to time.Duration) map[string]uint64 {
		sum := map[string]uint64{}
		for _, b := range r.res.Timeline {
			if b.Start >= from && b.Start+cfg.Timeline <= to {
				for k, v := range b.PerServer {
					sum[k] += v
				}
			}
		}
		return sum
	}
	during := window(burnAt, burnAt+time.Second)
	t.Logf("the second after burn 0.8: %v", during)
	if sh := share(during, "s1"); sh >= 0.15 {
		t.Errorf("in the second after burn 0.8, s1 got %.1f%%, want under 15%%", 100*sh)
		for _, b := range r.res.Timeline {
			if b.Start >= burnAt-200*time.Millisecond && b.Start < burnAt+time.Second {
				t.Logf("from %v: %v", b.Start-burnAt, b.PerServer)
			}
		}
	}
	// Within 2 seconds of burn 0, s1 is back: in the last half second of
	// that window it takes a real part of the work again (a third, when
	// all is even; during the burn it had next to none).
	after := window(coolAt+1500*time.Millisecond, coolAt+2*time.Second)
	t.Logf("1.5-2 s after burn 0: %v", after)
	if sh := share(after, "s1"); sh < 0.10 {
		t.Errorf("1.5 to 2 s after burn 0, s1 got %.1f%%, want it back at work (at least 10%%)", 100*sh)
	}
}
