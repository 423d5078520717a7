// Command bench floods discal with requests and reports throughput,
// latency and how the work was shared between servers.
//
//	go run ./bench -local 3 -d 5s
//	go run ./bench -target 127.0.0.1:7000 -n 100000 -c 128 -json
//	go run ./bench -target 127.0.0.1:7000 -rate 20000 -d 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/internal/faultnet"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

const usage = `bench: flood discal and measure it.

Usage:
  bench -local N [flags]           an embedded proxy and N quiet servers
  bench -target HOST:PORT[,...]    any endpoint that speaks the binary protocol
  bench -compare [-local N]        N (default 3) udpservers straight, through udpproxy and through nginx
  bench -policies [-local N]       least-load, round-robin and random, one server burdened
  bench -fleet N[,N...] [-down M]  N servers as processes behind a udpproxy process: its CPU per request
  bench -rogue MODE                3 good servers and a misbehaving one (blackhole, halfdead, slow), or one that stalls (stall)

Every reply is checked against the answer computed locally. The closed loop
(default) keeps -c requests in flight over -conns sockets; -rate switches to
an open loop at a fixed rate, with latency counted from each request's
intended send time.

Examples:
  bench -local 3 -d 5s
  bench -target 127.0.0.1:7000 -n 200000 -json
  bench -target 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 -d 5s   # straight to three servers
  bench -target 127.0.0.1:7000 -rate 20000 -d 10s
  bench -compare -d 5s              # direct vs udpproxy vs nginx, 3 servers, 3 rounds
  bench -policies -d 5s             # least-load vs round-robin vs random, one server burdened
  bench -local 3 -d 10s -plot load.png
  bench -fleet 3,16,64,256,1000 -down 0 -d 4s -c 128 -no-gso   # the proxy's cost against the servers it knows
  bench -fleet 3 -down 250 -d 4s -no-gso                       # 3 live servers and 250 where nothing listens
  bench -rogue blackhole -rogue-cores 1048576 -d 5s            # a status port that lies, a calculator port that never answers
  bench -rogue halfdead                                        # a calculator port that dies for 2s and comes back
  bench -rogue slow -rogue-delay 5ms -d 5s                     # a server that answers 5ms late and claims to be idle
  bench -rogue stall -d 5s                                     # a server stopped 100ms every second, 3,000 req/s

Flags:
`

func main() {
	if spec := os.Getenv(fleetChildEnv); spec != "" {
		os.Exit(fleetChild(spec))
	}
	if spec := os.Getenv(rogueChildEnv); spec != "" {
		os.Exit(rogueChild(spec))
	}
	os.Exit(run())
}

// options is everything the flags say.
type options struct {
	load     flood.Config
	local    int
	target   string
	asJSON   bool
	policy   string
	noProg   bool
	retries  int
	compare  bool
	rounds   int
	basePort int
	faults   faultnet.Faults
	plotFile string
	policies bool
	burn     float64
	fleet    string
	down     int
	perProc  int
	idle     time.Duration
	burdens  burdenList
	rogue    rogueConfig
}

// parseFlags reads the command line; it returns false and the exit status
// when the run ends there: -h and -version print on stdout, a usage error
// one line on stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (options, int, bool) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.local, "local", 0, "start an embedded proxy and `N` quiet servers and flood it")
	fs.StringVar(&o.target, "target", "", "endpoint(s) to flood, `HOST:PORT[,HOST:PORT...]`")
	fs.IntVar(&o.load.Requests, "n", 0, "stop after this many requests (default: run for -d)")
	fs.DurationVar(&o.load.Duration, "d", 0, "run this long (default 5s when -n is not given)")
	fs.IntVar(&o.load.InFlight, "c", 128, "requests in flight (closed loop)")
	fs.IntVar(&o.load.Conns, "conns", 0, "sockets carrying the load (default 4, or one per target)")
	fs.Float64Var(&o.load.Rate, "rate", 0, "open loop: requests per second at fixed intended times")
	fs.DurationVar(&o.load.Timeout, "timeout", time.Second, "first try's wait; each retry waits twice as long, up to 4×")
	fs.IntVar(&o.retries, "retries", 3, "times a request is sent again when no answer comes")
	fs.Uint64Var(&o.load.Seed, "seed", 1, "random seed for the operations")
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&o.noProg, "no-progress", false, "no live progress line")
	fs.BoolVar(&o.load.NoGSO, "no-gso", false, "send each request as its own datagram, like ordinary clients, instead of in UDP GSO batches")
	fs.StringVar(&o.policy, "policy", "least-load", "-local: the proxy's policy (least-load, round-robin, random)")
	fs.Float64Var(&o.faults.Loss, "loss", 0, "put a relay in front of the target (and, with -local, in front of each server) that drops this `fraction` of datagrams each way")
	fs.Float64Var(&o.faults.Dup, "dup", 0, "the relay duplicates this `fraction` of datagrams")
	fs.Float64Var(&o.faults.Reorder, "reorder", 0, "the relay holds back this `fraction` of datagrams behind later ones")
	fs.DurationVar(&o.faults.Jitter, "delay", 0, "the relay delays each datagram by a random time up to this")
	fs.StringVar(&o.plotFile, "plot", "", "write a PNG of each server's share and reported CPU over time to `FILE` (needs a udpproxy: -local or -target)")
	fs.DurationVar(&o.load.Timeline, "plot-every", 0, "-plot: the width of a time slice (default 100ms)")
	fs.BoolVar(&o.policies, "policies", false, "compare least-load, round-robin and random on servers run as processes, one of them burdened (see docs/balancing.md)")
	fs.Float64Var(&o.burn, "burn", 0.8, "-policies: the fraction of a core the first server burns")
	fs.BoolVar(&o.compare, "compare", false, "compare direct, udpproxy and nginx on the same servers and load (see docs/performance.md)")
	fs.IntVar(&o.rounds, "rounds", 3, "-compare: rounds, alternating the contenders")
	fs.IntVar(&o.basePort, "base-port", 27000, "-compare: the proxies listen from this port, servers from +1, status ports from +101")
	fs.StringVar(&o.fleet, "fleet", "", "run `N[,N...]` servers as processes behind a udpproxy process, one fleet size after another, and report the proxy's CPU per request and idle (see docs/performance.md)")
	fs.IntVar(&o.down, "down", 0, "-fleet: also give the proxy this many -server entries where nothing listens")
	fs.IntVar(&o.perProc, "per-proc", 0, "-fleet: servers per process (default: as many as keep it to 8 processes)")
	fs.DurationVar(&o.idle, "idle", 3*time.Second, "-fleet: how long the proxy's CPU is measured with no load, before the flood")
	fs.StringVar(&o.rogue.mode, "rogue", "", "three good servers and one that misbehaves, as processes behind a udpproxy process, checked against their targets: `MODE` blackhole, halfdead, slow or stall (see docs/balancing.md)")
	fs.IntVar(&o.rogue.cores, "rogue-cores", 2, "-rogue blackhole, slow: the cores the rogue claims, with 0% CPU")
	fs.DurationVar(&o.rogue.delay, "rogue-delay", 5*time.Millisecond, "-rogue slow: how late the rogue answers each request")
	fs.DurationVar(&o.rogue.outage, "rogue-outage", 2*time.Second, "-rogue halfdead: how long the calculator port stays dead")
	fs.Var(&o.burdens, "burden", "tell a server to burn a fraction of a core for part of the run, marked on -plot: `WHO=F@FROM-TO`, WHO a server's name with -local or its status port; repeatable")
	// Version alone: a DISCAL_ variable left for a daemon must not change
	// a measurement.
	common := cli.RegisterVersion(fs, "bench")
	if code, done := common.ParseCommandLine(fs, args, usage, stdout, stderr); done {
		return o, code, false
	}
	o.load.Retries, o.load.NoRetries = o.retries, o.retries == 0
	if fs.NArg() > 0 {
		return o, cli.UsageError(stderr, "bench", fmt.Errorf("unexpected argument %q", fs.Arg(0))), false
	}
	return o, cli.ExitOK, true
}

func run() int {
	o, code, ok := parseFlags(os.Args[1:], os.Stdout, os.Stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch {
	case o.fleet != "":
		return runFleetMode(ctx, o)
	case o.rogue.mode != "":
		return runRogueMode(ctx, o)
	case o.compare:
		return runCompareMode(ctx, o)
	case o.policies:
		return runPoliciesMode(ctx, o)
	}
	return runFlood(ctx, o)
}

// withDuration gives a load that says neither -n nor -d the 5 s default
// of the modes that run several floods.
func withDuration(cfg flood.Config) flood.Config {
	if cfg.Duration == 0 && cfg.Requests == 0 {
		cfg.Duration = 5 * time.Second
	}
	return cfg
}

// exitFor prints err and returns the status of a mode that ran.
func exitFor(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

func runCompareMode(ctx context.Context, o options) int {
	cfg := withDuration(o.load)
	servers := max(o.local, 3)
	if cfg.Conns == 0 {
		// Two sockets per server for every contender: nginx keeps each
		// client socket on one server, so this spreads it evenly too.
		cfg.Conns = 2 * servers
	}
	return exitFor(runCompare(ctx, compareConfig{rounds: o.rounds, servers: servers, basePort: o.basePort, load: cfg, out: os.Stdout}))
}

func runPoliciesMode(ctx context.Context, o options) int {
	cfg := withDuration(o.load)
	if cfg.Conns == 0 {
		cfg.Conns = 6
	}
	return exitFor(runPolicies(ctx, policiesConfig{rounds: o.rounds, servers: max(o.local, 3), burn: o.burn,
		basePort: o.basePort, load: cfg, plotPrefix: o.plotFile, out: os.Stdout}))
}

func runFleetMode(ctx context.Context, o options) int {
	sizes, err := parseSizes(o.fleet)
	if err != nil || o.down < 0 || o.perProc < 0 || o.idle <= 0 {
		if err == nil {
			err = fmt.Errorf("-down and -per-proc must not be negative, -idle must be positive")
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 64
	}
	return exitFor(runFleet(ctx, fleetConfig{sizes: sizes, down: o.down, perProc: o.perProc, idle: o.idle,
		load: withDuration(o.load), asJSON: o.asJSON, out: os.Stdout}))
}

func runRogueMode(ctx context.Context, o options) int {
	rc := o.rogue
	err := parseRogueMode(rc.mode)
	if err == nil && (rc.cores < 0 || rc.delay < 0 || rc.outage <= 0 || o.rounds < 1) {
		err = fmt.Errorf("-rogue-cores and -rogue-delay must not be negative, -rogue-outage and -rounds must be positive")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 64
	}
	rc.rounds, rc.load, rc.asJSON, rc.out = o.rounds, withDuration(o.load), o.asJSON, os.Stdout
	return exitFor(runRogue(ctx, rc))
}

// runFlood is the plain mode: one flood of -local or -target.
func runFlood(ctx context.Context, o options) int {
	if (o.local > 0) == (o.target != "") || o.retries < 0 {
		fmt.Fprintln(os.Stderr, "bench: give exactly one of -local N and -target HOST:PORT (bench -h for help)")
		return 64
	}
	cfg := o.load
	t, code := startTargets(o)
	defer t.close()
	if code != 0 {
		return code
	}
	cfg.Targets = t.targets
	burdens, err := t.resolve(o.burdens)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 64
	}
	var loads *loadRecorder
	if o.plotFile != "" {
		if cfg.Timeline == 0 {
			cfg.Timeline = 100 * time.Millisecond
		}
		loads = recordLoad(cfg.Timeline, func() (string, error) { return askText(t.stats, "stats\n") })
	}
	if !o.noProg && isTerminal(os.Stderr) {
		cfg.Progress = func(s flood.Snapshot) { fmt.Fprintf(os.Stderr, "\r\033[K%s", s.Line()) }
	}
	lift := applyBurdens(ctx, burdens)
	res, err := flood.Run(ctx, cfg)
	lift()
	if cfg.Progress != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 64
	}
	res.CPULabel = t.cpuLabel
	if loads != nil {
		in := plotInput{title: t.plotTitle(o), res: res, loads: loads.finish(), burdens: burdens, local: t.local}
		if err := writePlot(o.plotFile, in); err != nil {
			fmt.Fprintln(os.Stderr, "bench: plot:", err)
			return 1
		}
	}
	return report(res, o.asJSON)
}

// report prints the result and returns the exit status it calls for.
func report(res *flood.Result, asJSON bool) int {
	var err error
	if asJSON {
		err = res.WriteJSON(os.Stdout)
	} else {
		err = res.WriteTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if res.Wrong > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d wrong answers\n", res.Wrong)
		return 1
	}
	if res.OK+res.Errors == 0 {
		fmt.Fprintln(os.Stderr, "bench: no request was answered")
		return 2
	}
	return 0
}

// targets is what a plain run floods, with whatever it started for that.
type targets struct {
	targets  []string
	stats    string // the proxy itself, for -plot: not through a relay
	cpuLabel string
	local    bool              // the proxy and servers run in this process
	status   map[string]string // -local: each server's status port by name
	closers  []func()
}

// resolve finds the status port of each burden named by a server's name.
func (t *targets) resolve(bs []burden) ([]burden, error) {
	out := slices.Clone(bs)
	for i, b := range out {
		if addr, ok := t.status[b.who]; ok {
			out[i].addr = addr
			continue
		}
		if _, _, err := net.SplitHostPort(b.who); err != nil {
			return nil, fmt.Errorf("-burden %s: no server of that name (give a status port HOST:PORT without -local)", b.who)
		}
		// The plot names the server, as the answers do, not its port.
		if text, err := askText(b.addr, "status\n"); err == nil {
			if name, ok := strings.CutPrefix(strings.Fields(text + " ")[0], "server="); ok && name != "" {
				out[i].who = name
			}
		}
	}
	return out, nil
}

func (t *targets) close() {
	for _, c := range slices.Backward(t.closers) {
		c()
	}
}

// plotTitle says what ran, not which ephemeral address it ran on.
func (t *targets) plotTitle(o options) string {
	what := "udpproxy at " + o.target
	if policy, servers, ok := proxyShape(t.stats); ok {
		what = fmt.Sprintf("udpproxy (%s), %s servers", policy, servers)
	}
	if t.local {
		what = fmt.Sprintf("embedded udpproxy (%s), %d servers", o.policy, o.local)
	}
	load := fmt.Sprintf("%d in flight", o.load.InFlight)
	if o.load.Rate > 0 {
		load = fmt.Sprintf("%.0f req/s", o.load.Rate)
	}
	if o.load.NoGSO {
		load += ", no GSO"
	}
	if o.faults != (faultnet.Faults{}) {
		load += ", faults"
	}
	return fmt.Sprintf("discal: %s; %s", what, load)
}

// proxyShape asks the proxy at addr for its policy and number of servers,
// from the first line of its text stats.
func proxyShape(addr string) (policy, servers string, ok bool) {
	text, err := askText(addr, "stats\n")
	if err != nil {
		return "", "", false
	}
	first, _, _ := strings.Cut(text, "\n")
	for _, kv := range strings.Fields(first) {
		if v, found := strings.CutPrefix(kv, "policy="); found {
			policy = v
		} else if v, found := strings.CutPrefix(kv, "servers="); found {
			servers = v
		}
	}
	return policy, servers, policy != "" && servers != ""
}

// startTargets starts the embedded cluster of -local, or reads -target,
// and puts relays in front when faults are asked for. A non-zero status
// means it failed and said why.
func startTargets(o options) (*targets, int) {
	t := &targets{}
	faulty := o.faults != (faultnet.Faults{})
	if o.local > 0 {
		pol, ok := udpproxy.ParsePolicy(o.policy)
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown policy %q\n", o.policy)
			return t, 64
		}
		ccfg := discaltest.Config{
			Servers: o.local,
			Server:  udpserver.Config{Quiet: true},
			Proxy:   udpproxy.Config{Policy: pol},
			Logger:  discaltest.Quiet(),
		}
		if faulty {
			ccfg.Faults = &o.faults
		}
		c, err := discaltest.Start(ccfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return t, 1
		}
		t.closers = append(t.closers, func() { c.Close() })
		t.targets = []string{c.ProxyAddr.String()}
		t.cpuLabel = "process CPU" // the proxy and the servers run in this process too
		t.local = true
		t.status = map[string]string{}
		for _, s := range c.Servers {
			t.status[s.Name] = s.StatAddr.String()
		}
	} else {
		if _, ok := udpproxy.ParsePolicy(o.policy); !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown policy %q\n", o.policy)
			return t, 64
		}
		t.targets = strings.Split(o.target, ",")
	}
	t.stats = t.targets[0]
	if faulty {
		// A relay in front of each target: the bench's hop misbehaves too.
		for i, tg := range t.targets {
			r, err := faultnet.Start(faultnet.Config{Target: tg, Forward: o.faults, Backward: o.faults, Seed: o.load.Seed + uint64(i)})
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return t, 64
			}
			t.closers = append(t.closers, func() { r.Close() })
			t.targets[i] = r.Addr().String()
		}
	}
	return t, 0
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
