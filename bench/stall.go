package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/discal/discal/bench/flood"
)

// -rogue stall: three good servers, one of which stops for stallFor of
// every stallEvery (SIGSTOP, then SIGCONT: what a GC pause or a noisy
// neighbour does to a server), against the same load with no stalls. The
// requests already sent to a server that stops wait out the stall unless
// the proxy hedges them (udpproxy/hedge.go); each round runs the load with
// no stall, with stalls, and with stalls and hedging off, in an order that
// turns from round to round.
const (
	stallEvery = time.Second
	stallFor   = 100 * time.Millisecond
	stallLead  = 500 * time.Millisecond // load before the first stall
	// The targets of issue 19: latency with stalls against without
	// (medians of the rounds), and the requests the servers compute
	// beyond one per request, in percent of those answered (worst round).
	maxStallP99Ratio  = 1.5
	maxStallP999Ratio = 3.0
	maxStallExtra     = 5.0
	// The load when -rate is not given: an open loop, so that a stall
	// shows in latency rather than slowing the sender down.
	stallRate     = 3000
	stallInFlight = 64
)

// stallRun is one flood of -rogue stall; its JSON keys are part of the
// bench's output contract.
type stallRun struct {
	Round     int     `json:"round"`
	Stall     bool    `json:"stall"`
	Hedging   bool    `json:"hedging"`
	RPS       float64 `json:"rps"`
	P50       float64 `json:"p50_us"`
	P99       float64 `json:"p99_us"`
	P999      float64 `json:"p999_us"`
	Max       float64 `json:"max_us"`
	Hedges    float64 `json:"hedges"`
	HedgeWins float64 `json:"hedge_wins"`
	Extra     float64 `json:"extra_tries_percent"` // tries the servers got beyond one per request, % of answered
	OK        uint64  `json:"ok"`
	Wrong     uint64  `json:"wrong"`
	Errors    uint64  `json:"errors"`
	Timeouts  uint64  `json:"timeouts"`
}

// stallVariants are the floods of a round: no stall, stalls, stalls with
// hedging off.
var stallVariants = []struct{ stall, hedging bool }{{false, true}, {true, true}, {true, false}}

// runStall runs -rogue stall's rounds and checks its targets.
func runStall(ctx context.Context, rc rogueConfig, proxyBin string, good *fleet, rep *rogueReport) error {
	victim := good.procs[len(good.procs)-1]
	for round := 1; round <= rc.rounds; round++ {
		for k := range stallVariants {
			v := stallVariants[(k+round-1)%len(stallVariants)]
			r, err := stallRound(ctx, rc, proxyBin, good.addrs, victim, v.stall, v.hedging)
			if err != nil {
				return err
			}
			r.Round = round
			rep.Stalls = append(rep.Stalls, r)
			fmt.Fprintf(os.Stderr, "bench: round %d, stall %v, hedging %v: p99 %.0f us, p99.9 %.0f us, %.0f hedges\n",
				round, v.stall, v.hedging, r.P99, r.P999, r.Hedges)
		}
	}
	rep.Checks = stallChecks(rep.Stalls)
	return nil
}

// stallChecks holds the runs with hedging against the targets.
func stallChecks(runs []stallRun) []rogueCheck {
	med := func(stall bool, f func(stallRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			if r.Stall == stall && r.Hedging {
				xs = append(xs, f(r))
			}
		}
		return median(xs)
	}
	var extra float64
	for _, r := range runs {
		if r.Stall && r.Hedging {
			extra = max(extra, r.Extra)
		}
	}
	p99 := func(r stallRun) float64 { return r.P99 }
	p999 := func(r stallRun) float64 { return r.P999 }
	return []rogueCheck{
		newCheck("p99 with stalls / without (medians, hedging on)", med(true, p99)/med(false, p99), maxStallP99Ratio, true),
		newCheck("p99.9 with stalls / without (medians, hedging on)", med(true, p999)/med(false, p999), maxStallP999Ratio, true),
		newCheck("tries beyond one per request, % of answered (worst round with stalls)", extra, maxStallExtra, true),
	}
}

// stallRound floods a fresh proxy once, stopping victim now and then if
// stall says so.
func stallRound(ctx context.Context, rc rogueConfig, proxyBin string, servers []string, victim *managed, stall, hedging bool) (stallRun, error) {
	var extra []string
	if !hedging {
		extra = []string{"-hedge-budget", "0"}
	}
	proxy, addr, err := startRogueProxy(ctx, proxyBin, servers, extra...)
	defer stopProcess(proxy)
	if err != nil {
		return stallRun{}, err
	}
	load := rc.load
	load.Targets = []string{addr.calc}
	if load.Rate == 0 {
		load.Rate, load.InFlight = stallRate, stallInFlight
	}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if stall {
			stallLoop(victim, stop)
		}
	}()
	res, err := flood.Run(ctx, load)
	close(stop)
	<-stopped
	if err != nil {
		return stallRun{}, err
	}
	totals, err := scrapeTotals(&http.Client{Timeout: 2 * time.Second}, addr.metrics)
	if err != nil {
		return stallRun{}, err
	}
	r := stallRun{Stall: stall, Hedging: hedging, RPS: res.RPS, P50: us(res.P50), P99: us(res.P99), P999: us(res.P999),
		Max: us(res.Max), Hedges: totals["discal_proxy_hedges_total"], HedgeWins: totals["discal_proxy_hedge_wins_total"],
		OK: res.OK, Wrong: res.Wrong, Errors: res.Errors, Timeouts: res.Timeouts}
	tries := totals["discal_proxy_server_requests_total"] // summed over the servers
	r.Extra = 100 * (tries - totals["discal_proxy_requests_total"]) / float64(max(res.OK, 1))
	if res.Wrong > 0 {
		return r, fmt.Errorf("%d wrong answers", res.Wrong)
	}
	return r, nil
}

// stallLoop stops victim for stallFor every stallEvery, from stallLead on,
// until stop is closed; it leaves it running.
func stallLoop(victim *managed, stop <-chan struct{}) {
	p := victim.cmd.Process
	next := time.Now().Add(stallLead)
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(next)):
		}
		if p.Signal(syscall.SIGSTOP) != nil {
			return
		}
		select {
		case <-stop:
		case <-time.After(stallFor):
		}
		_ = p.Signal(syscall.SIGCONT)
		next = next.Add(stallEvery)
	}
}

// scrapeTotals reads a proxy's metrics and sums each series by name,
// whatever its labels: discal_proxy_server_requests_total, say, summed
// over the servers.
func scrapeTotals(client *http.Client, addr string) (map[string]float64, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("the proxy's metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "discal_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		name, _, _ := strings.Cut(line[:max(i, 0)], "{")
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && i > 0 {
			out[name] += v
		}
	}
	return out, sc.Err()
}

func printStalls(w io.Writer, runs []stallRun) error {
	fmt.Fprintf(w, "-rogue stall: one of three servers stopped for %v every %v\n", stallFor, stallEvery)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tstalls\thedging\treq/s\tp50 us\tp99 us\tp99.9 us\tmax us\thedges\thedges won\textra tries\terrors\ttimeouts\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f%%\t%d\t%d\t\n", r.Round, yesNo(r.Stall), yesNo(r.Hedging),
			r.RPS, r.P50, r.P99, r.P999, r.Max, r.Hedges, r.HedgeWins, r.Extra, r.Errors, r.Timeouts)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
