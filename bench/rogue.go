package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/discal/discal/bench/flood"
)

// rogueConfig is the -rogue mode: three good servers (processes) behind a
// udpproxy process, and one that misbehaves, to check the targets of
// passive health and of reports checked against what the proxy sees.
type rogueConfig struct {
	mode   string        // blackhole, halfdead or slow
	cores  int           // the cores the rogue claims
	delay  time.Duration // slow: how late the rogue answers
	outage time.Duration // halfdead: how long the calculator port is dead
	rounds int
	load   flood.Config
	asJSON bool
	out    io.Writer
}

// The targets of issue 9, and the times they are measured over.
const (
	rogueGrace     = time.Second // the rogue's first tries are counted after this
	maxFirstShare  = 1.0         // percent of first tries the rogue may get after rogueGrace
	minOthersRatio = 0.9         // the others' throughput with the rogue against without
	maxP99Ratio    = 2.0         // slow: p99 with the rogue against without
	maxEjectAfter  = time.Second // halfdead: from the port's death to the ejection
	maxBackAfter   = 2 * time.Second
	halfdeadLead   = time.Second     // load before the calculator port dies
	halfdeadTail   = 3 * time.Second // load after it answers again, the longest wait for the return
	goodServers    = 3               // beside the rogue
)

// errTargetMissed says a -rogue run went through and a target was missed.
var errTargetMissed = errors.New("target missed")

var rogueModes = []string{"blackhole", "halfdead", "slow", "stall"}

// rogueRun is one flood of a with-and-without mode; its JSON keys are part
// of the bench's output contract.
type rogueRun struct {
	Round      int     `json:"round"`
	WithRogue  bool    `json:"with_rogue"`
	RPS        float64 `json:"rps"`
	OthersRPS  float64 `json:"others_rps_after_1s"`
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	P999       float64 `json:"p999_us"`
	RogueShare float64 `json:"rogue_answer_share_percent"`
	FirstShare float64 `json:"rogue_first_try_share_after_1s_percent"`
	Ejections  float64 `json:"rogue_ejections"` // times the proxy ejected the rogue in the run
	OK         uint64  `json:"ok"`
	Wrong      uint64  `json:"wrong"`
	Errors     uint64  `json:"errors"`
	Timeouts   uint64  `json:"timeouts"`
}

// outageRun is one round of -rogue halfdead.
type outageRun struct {
	Round    int     `json:"round"`
	Ejected  bool    `json:"ejected"`
	EjectMS  float64 `json:"eject_ms"` // from the port's death to the metrics showing it ejected
	Back     bool    `json:"back"`
	BackMS   float64 `json:"back_ms"` // from the port answering again to it being in rotation
	RPS      float64 `json:"rps"`
	Wrong    uint64  `json:"wrong"`
	Errors   uint64  `json:"errors"`
	Timeouts uint64  `json:"timeouts"`
}

// rogueCheck is one target and what was seen.
type rogueCheck struct {
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	AtMost bool    `json:"at_most"` // the value may be at most the limit; otherwise at least
	Pass   bool    `json:"pass"`
}

func newCheck(target string, value, limit float64, atMost bool) rogueCheck {
	pass := value >= limit
	if atMost {
		pass = value <= limit
	}
	return rogueCheck{Target: target, Value: value, Limit: limit, AtMost: atMost, Pass: pass}
}

// rogueReport is what -rogue prints, and with -json its one JSON object.
type rogueReport struct {
	Mode    string       `json:"mode"`
	Cores   int          `json:"rogue_cores,omitempty"`
	DelayMS float64      `json:"rogue_delay_ms,omitempty"`
	Runs    []rogueRun   `json:"runs,omitempty"`
	Outages []outageRun  `json:"outages,omitempty"`
	Stalls  []stallRun   `json:"stalls,omitempty"`
	Checks  []rogueCheck `json:"checks"`
	Pass    bool         `json:"pass"`
}

// runRogue runs one -rogue mode and reports; it returns an error when a
// target was missed or the run failed.
func runRogue(ctx context.Context, rc rogueConfig) error {
	dir, self, err := buildForChildren("rogue")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	good, err := startFleet(self, goodServers, 1)
	defer good.stop()
	if err != nil {
		return err
	}
	proxyBin := filepath.Join(dir, "udpproxy")
	rep := rogueReport{Mode: rc.mode}
	switch rc.mode {
	case "halfdead":
		err = runHalfDead(ctx, rc, self, proxyBin, good, &rep)
	case "stall":
		err = runStall(ctx, rc, proxyBin, good, &rep)
	default:
		err = runWithWithout(ctx, rc, self, proxyBin, good, &rep)
	}
	if err == nil {
		// A flood cut short by Ctrl-C ends without an error of its own.
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	rep.Pass = true
	var missed []string
	for _, c := range rep.Checks {
		if !c.Pass {
			rep.Pass = false
			missed = append(missed, c.Target)
		}
	}
	if rc.asJSON {
		err = json.NewEncoder(rc.out).Encode(rep)
	} else {
		err = printRogue(rc.out, rep)
	}
	if err != nil {
		return err
	}
	if len(missed) > 0 {
		return fmt.Errorf("-rogue %s: %w: %s", rc.mode, errTargetMissed, strings.Join(missed, "; "))
	}
	return nil
}

// rogueSpec is the child mode's value for the rogue of rc.
func (rc rogueConfig) rogueSpec() string {
	if rc.mode == "slow" {
		return fmt.Sprintf("%s=slow,%d,%s", rogueChildEnv, rc.cores, rc.delay)
	}
	return fmt.Sprintf("%s=blackhole,%d", rogueChildEnv, rc.cores)
}

// runWithWithout floods the good servers with the rogue and without it,
// alternating, -rounds times each, and checks the mode's targets.
func runWithWithout(ctx context.Context, rc rogueConfig, self, proxyBin string, good *fleet, rep *rogueReport) error {
	rogue, addrs, err := startChild(self, rc.rogueSpec(), 1, "rogue process")
	defer stopProcess(rogue)
	if err != nil {
		return err
	}
	rep.Cores = rc.cores
	if rc.mode == "slow" {
		rep.DelayMS = ms(rc.delay)
	}
	rogueCalc, _, _ := strings.Cut(addrs[0], ",")
	for round := 1; round <= rc.rounds; round++ {
		// Which goes first alternates, so that a drift in the machine's
		// load does not favour one side.
		for _, with := range []bool{round%2 == 1, round%2 == 0} {
			servers := slices.Clone(good.addrs)
			if with {
				servers = append(servers, addrs[0])
			}
			r, err := rogueRound(ctx, rc, proxyBin, servers, rogueCalc)
			if err != nil {
				return err
			}
			r.Round, r.WithRogue = round, with
			rep.Runs = append(rep.Runs, r)
			fmt.Fprintf(os.Stderr, "bench: round %d, rogue %v: %.0f req/s, p99 %.0f us, rogue's first tries after 1s %.2f%%\n",
				round, with, r.RPS, r.P99, r.FirstShare)
		}
	}
	rep.Checks = withWithoutChecks(rc.mode, rep.Runs)
	return nil
}

// withWithoutChecks holds the runs against the mode's targets: the worst
// round for the rogue's share (it must hold every time), the medians for
// ratios of figures that the machine's noise moves.
func withWithoutChecks(mode string, runs []rogueRun) []rogueCheck {
	med := func(with bool, f func(rogueRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			if r.WithRogue == with {
				xs = append(xs, f(r))
			}
		}
		return median(xs)
	}
	var worst float64
	for _, r := range runs {
		if r.WithRogue {
			worst = max(worst, r.FirstShare)
		}
	}
	if mode == "slow" {
		p99 := func(r rogueRun) float64 { return r.P99 }
		return []rogueCheck{newCheck("p99 with the rogue / without (medians)", med(true, p99)/med(false, p99), maxP99Ratio, true)}
	}
	others := func(r rogueRun) float64 { return r.OthersRPS }
	return []rogueCheck{
		newCheck("rogue's share of first tries after 1s, % (worst round)", worst, maxFirstShare, true),
		newCheck("others' req/s after 1s with the rogue / without (medians)", med(true, others)/med(false, others), minOthersRatio, false),
	}
}

// startRogueProxy starts a proxy in front of servers, with extra flags,
// and waits until it has every one of them up.
func startRogueProxy(ctx context.Context, proxyBin string, servers []string, extra ...string) (*managed, proxyAddrs, error) {
	proxy, addr, err := startFleetProxy(proxyBin, servers, extra...)
	if err != nil {
		return proxy, addr, err
	}
	return proxy, addr, waitForFleet(ctx, addr.metrics, len(servers), 0)
}

// rogueRound floods a fresh proxy in front of servers once, reading its
// metrics one second in and at the end for the first tries of each server.
func rogueRound(ctx context.Context, rc rogueConfig, proxyBin string, servers []string, rogueCalc string) (rogueRun, error) {
	proxy, addr, err := startRogueProxy(ctx, proxyBin, servers)
	defer stopProcess(proxy)
	if err != nil {
		return rogueRun{}, err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	load := rc.load
	load.Targets = []string{addr.calc}
	load.Timeline = 100 * time.Millisecond
	res, before, err := floodSampled(ctx, load, func() (map[string]serverMetrics, error) {
		return scrapeServers(client, addr.metrics)
	})
	if err != nil {
		return rogueRun{}, err
	}
	after, err := scrapeServers(client, addr.metrics)
	if err != nil {
		return rogueRun{}, err
	}
	r := rogueRun{RPS: res.RPS, P50: us(res.P50), P99: us(res.P99), P999: us(res.P999),
		OK: res.OK, Wrong: res.Wrong, Errors: res.Errors, Timeouts: res.Timeouts}
	var first, rogueFirst float64
	for a, m := range after {
		d := m.firstTries() - before[a].firstTries()
		first += d
		if a == rogueCalc {
			rogueFirst, r.Ejections = d, m.ejections
		}
	}
	r.FirstShare = 100 * rogueFirst / max(first, 1)
	var answers uint64
	for _, n := range res.PerServer {
		answers += n
	}
	r.RogueShare = 100 * float64(res.PerServer[rogueName]) / float64(max(answers, 1))
	r.OthersRPS = othersAfter(res, rogueGrace)
	if res.Wrong > 0 {
		return r, fmt.Errorf("%d wrong answers", res.Wrong)
	}
	return r, nil
}

// floodSampled runs the flood and calls sample rogueGrace into it.
func floodSampled(ctx context.Context, load flood.Config, sample func() (map[string]serverMetrics, error)) (*flood.Result, map[string]serverMetrics, error) {
	type result struct {
		res *flood.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := flood.Run(ctx, load)
		done <- result{res, err}
	}()
	var before map[string]serverMetrics
	var sampleErr error
	select {
	case r := <-done:
		if r.err == nil && ctx.Err() != nil {
			r.err = ctx.Err()
		} else if r.err == nil {
			r.err = fmt.Errorf("the flood ended before %v: give -d more", rogueGrace)
		}
		return nil, nil, r.err
	case <-time.After(rogueGrace):
		before, sampleErr = sample()
	}
	r := <-done
	if r.err == nil {
		r.err = sampleErr
	}
	return r.res, before, r.err
}

// othersAfter is the answers per second from servers other than the
// rogue, counted after the first grace of the run.
func othersAfter(res *flood.Result, grace time.Duration) float64 {
	var n uint64
	for _, b := range res.Timeline {
		if b.Start < grace {
			continue
		}
		for name, c := range b.PerServer {
			if name != rogueName {
				n += c
			}
		}
	}
	if res.Duration <= grace {
		return 0
	}
	return float64(n) / (res.Duration - grace).Seconds()
}

// runHalfDead puts a relay in front of the last good server's calculator
// port, and in each round kills the port (the relay stops forwarding) one
// second into the load and brings it back -rogue-outage later, timing the
// proxy's ejection and return from its metrics.
func runHalfDead(ctx context.Context, rc rogueConfig, self, proxyBin string, good *fleet, rep *rogueReport) error {
	last := good.addrs[len(good.addrs)-1]
	calc, status, _ := strings.Cut(last, ",")
	relay, addrs, err := startChild(self, rogueChildEnv+"=relay,"+calc, 1, "relay")
	defer stopProcess(relay)
	if err != nil {
		return err
	}
	servers := append(slices.Clone(good.addrs[:len(good.addrs)-1]), addrs[0]+","+status)
	for round := 1; round <= rc.rounds; round++ {
		o, err := outageRound(ctx, rc, proxyBin, servers, relay)
		if err != nil {
			return err
		}
		o.Round = round
		rep.Outages = append(rep.Outages, o)
		fmt.Fprintf(os.Stderr, "bench: round %d: ejected %v after %.0f ms, back %v after %.0f ms\n",
			round, o.Ejected, o.EjectMS, o.Back, o.BackMS)
	}
	var eject, back float64
	for _, o := range rep.Outages {
		eject, back = max(eject, o.EjectMS), max(back, o.BackMS)
	}
	rep.Checks = []rogueCheck{
		newCheck("ms from the port's death to its ejection (worst round)", eject, ms(maxEjectAfter), true),
		newCheck("ms from the port answering to its return (worst round)", back, ms(maxBackAfter), true),
	}
	return nil
}

// outageRound is one round of -rogue halfdead with a fresh proxy.
func outageRound(ctx context.Context, rc rogueConfig, proxyBin string, servers []string, relay *managed) (outageRun, error) {
	proxy, addr, err := startRogueProxy(ctx, proxyBin, servers)
	defer stopProcess(proxy)
	if err != nil {
		return outageRun{}, err
	}
	relayCalc, _, _ := strings.Cut(servers[len(servers)-1], ",")
	client := &http.Client{Timeout: time.Second}
	load := rc.load
	load.Targets = []string{addr.calc}
	load.Duration, load.Requests = halfdeadLead+rc.outage+halfdeadTail, 0
	type result struct {
		res *flood.Result
		err error
	}
	done := make(chan result, 1)
	// The flood stops once the return is seen: its Duration is only the
	// bound of a round where it is not.
	floodCtx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	go func() {
		res, err := flood.Run(floodCtx, load)
		done <- result{res, err}
	}()
	var o outageRun
	if sleepUntil(ctx, time.Now().Add(halfdeadLead)) {
		o = timeOutage(ctx, rc, client, addr.metrics, relayCalc, relay)
	}
	// The relay forwards again whatever happened, for the next round.
	_, _ = io.WriteString(relay.stdin, "resume\n")
	stopFlood()
	r := <-done
	if r.err != nil {
		return o, r.err
	}
	o.RPS, o.Wrong, o.Errors, o.Timeouts = r.res.RPS, r.res.Wrong, r.res.Errors, r.res.Timeouts
	if r.res.Wrong > 0 {
		return o, fmt.Errorf("%d wrong answers", r.res.Wrong)
	}
	return o, ctx.Err()
}

// timeOutage kills the calculator port behind the relay, waits for the
// ejection, brings the port back after the outage and waits for the return.
func timeOutage(ctx context.Context, rc rogueConfig, client *http.Client, metrics, calc string, relay *managed) outageRun {
	var o outageRun
	if _, err := io.WriteString(relay.stdin, "pause\n"); err != nil {
		return o
	}
	t1 := time.Now()
	t2 := t1.Add(rc.outage)
	d, ok := watchServer(ctx, client, metrics, calc, t1, t2, func(m serverMetrics) bool { return m.ejected })
	o.Ejected, o.EjectMS = ok, ms(d)
	if !sleepUntil(ctx, t2) {
		return o
	}
	if _, err := io.WriteString(relay.stdin, "resume\n"); err != nil {
		return o
	}
	t2 = time.Now()
	d, ok = watchServer(ctx, client, metrics, calc, t2, t2.Add(halfdeadTail-200*time.Millisecond),
		func(m serverMetrics) bool { return m.inRotation })
	o.Back, o.BackMS = ok, ms(d)
	if !o.Ejected {
		// Never out, so never back: the return is not what was missed.
		o.Back, o.BackMS = false, 0
	}
	return o
}

// printRogue prints a -rogue report as tables and a line per target.
func printRogue(w io.Writer, rep rogueReport) error {
	if err := printRogueRuns(w, rep); err != nil {
		return err
	}
	for _, c := range rep.Checks {
		verdict, rel := "PASS", "at least"
		if !c.Pass {
			verdict = "FAIL"
		}
		if c.AtMost {
			rel = "at most"
		}
		fmt.Fprintf(w, "%s  %s: %.3g (target %s %g)\n", verdict, c.Target, c.Value, rel, c.Limit)
	}
	return nil
}

func printRogueRuns(w io.Writer, rep rogueReport) error {
	if rep.Mode == "stall" {
		return printStalls(w, rep.Stalls)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	if rep.Mode == "halfdead" {
		fmt.Fprintln(tw, "round\tejected after ms\tback after ms\treq/s\terrors\ttimeouts\t")
		for _, o := range rep.Outages {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%.0f\t%d\t%d\t\n", o.Round, msOrNever(o.Ejected, o.EjectMS),
				msOrNever(o.Back, o.BackMS), o.RPS, o.Errors, o.Timeouts)
		}
		return tw.Flush()
	}
	fmt.Fprintf(w, "-rogue %s: the rogue claims %d cores and 0%% CPU", rep.Mode, rep.Cores)
	if rep.Mode == "slow" {
		fmt.Fprintf(w, " and answers %gms late", rep.DelayMS)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "round\trogue\treq/s\tothers req/s after 1s\tp50 us\tp99 us\tp99.9 us\trogue answers\trogue first tries after 1s\tejections\terrors\ttimeouts\t")
	for _, r := range rep.Runs {
		with := "without"
		if r.WithRogue {
			with = "with"
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f%%\t%.2f%%\t%.0f\t%d\t%d\t\n", r.Round, with, r.RPS, r.OthersRPS,
			r.P50, r.P99, r.P999, r.RogueShare, r.FirstShare, r.Ejections, r.Errors, r.Timeouts)
	}
	return tw.Flush()
}

func msOrNever(seen bool, v float64) string {
	if !seen {
		return "never"
	}
	return fmt.Sprintf("%.0f", v)
}

// parseRogueMode checks -rogue's value.
func parseRogueMode(mode string) error {
	if !slices.Contains(rogueModes, mode) {
		return errors.New("-rogue " + mode + ": want one of " + strings.Join(rogueModes, ", "))
	}
	return nil
}
