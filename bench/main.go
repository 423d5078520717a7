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
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/internal/faultnet"
	cluster "github.com/discal/discal/internal/testcluster"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

const usage = `bench: flood discal and measure it.

Usage:
  bench -local N [flags]           an embedded proxy and N quiet servers
  bench -target HOST:PORT[,...]    any endpoint that speaks the binary protocol
  bench -compare [-local N]        N (default 3) udpservers straight, through udpproxy and through nginx

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

Flags:
`

func main() { os.Exit(run()) }

func run() int {
	var (
		cfg      flood.Config
		local    int
		target   string
		asJSON   bool
		policy   string
		noProg   bool
		retries  int
		compare  bool
		rounds   int
		basePort int
		cpuLabel string
		faults   faultnet.Faults
		plotFile string
		policies bool
		burn     float64
	)
	flag.IntVar(&local, "local", 0, "start an embedded proxy and `N` quiet servers and flood it")
	flag.StringVar(&target, "target", "", "endpoint(s) to flood, `HOST:PORT[,HOST:PORT...]`")
	flag.IntVar(&cfg.Requests, "n", 0, "stop after this many requests (default: run for -d)")
	flag.DurationVar(&cfg.Duration, "d", 0, "run this long (default 5s when -n is not given)")
	flag.IntVar(&cfg.InFlight, "c", 128, "requests in flight (closed loop)")
	flag.IntVar(&cfg.Conns, "conns", 0, "sockets carrying the load (default 4, or one per target)")
	flag.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second at fixed intended times")
	flag.DurationVar(&cfg.Timeout, "timeout", time.Second, "first try's wait; each retry waits twice as long, up to 4×")
	flag.IntVar(&retries, "retries", 3, "times a request is sent again when no answer comes")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "random seed for the operations")
	flag.BoolVar(&asJSON, "json", false, "print the result as JSON")
	flag.BoolVar(&noProg, "no-progress", false, "no live progress line")
	flag.BoolVar(&cfg.NoGSO, "no-gso", false, "send each request as its own datagram, like ordinary clients, instead of in UDP GSO batches")
	flag.StringVar(&policy, "policy", "least-load", "-local: the proxy's policy (least-load, round-robin, random)")
	flag.Float64Var(&faults.Loss, "loss", 0, "put a relay in front of the target (and, with -local, in front of each server) that drops this `fraction` of datagrams each way")
	flag.Float64Var(&faults.Dup, "dup", 0, "the relay duplicates this `fraction` of datagrams")
	flag.Float64Var(&faults.Reorder, "reorder", 0, "the relay holds back this `fraction` of datagrams behind later ones")
	flag.DurationVar(&faults.Jitter, "delay", 0, "the relay delays each datagram by a random time up to this")
	flag.StringVar(&plotFile, "plot", "", "write a PNG of each server's share and reported CPU over time to `FILE` (needs a udpproxy: -local or -target)")
	flag.DurationVar(&cfg.Timeline, "plot-every", 0, "-plot: the width of a time slice (default 100ms)")
	flag.BoolVar(&policies, "policies", false, "compare least-load, round-robin and random on servers run as processes, one of them burdened (see README)")
	flag.Float64Var(&burn, "burn", 0.8, "-policies: the fraction of a core the first server burns")
	flag.BoolVar(&compare, "compare", false, "compare direct, udpproxy and nginx on the same servers and load (see README)")
	flag.IntVar(&rounds, "rounds", 3, "-compare: rounds, alternating the contenders")
	flag.IntVar(&basePort, "base-port", 27000, "-compare: the proxies listen from this port, servers from +1, status ports from +101")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.CommandLine.Init("bench", flag.ContinueOnError)
	if err := flag.CommandLine.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 64
	}
	cfg.Retries, cfg.NoRetries = retries, retries == 0
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if compare {
		if cfg.Duration == 0 && cfg.Requests == 0 {
			cfg.Duration = 5 * time.Second
		}
		servers := max(local, 3)
		if cfg.Conns == 0 {
			// Two sockets per server for every contender: nginx keeps each
			// client socket on one server, so this spreads it evenly too.
			cfg.Conns = 2 * servers
		}
		err := runCompare(ctx, compareConfig{rounds: rounds, servers: servers, basePort: basePort, load: cfg, out: os.Stdout})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}
	if policies {
		if cfg.Duration == 0 && cfg.Requests == 0 {
			cfg.Duration = 5 * time.Second
		}
		if cfg.Conns == 0 {
			cfg.Conns = 6
		}
		err := runPolicies(ctx, policiesConfig{rounds: rounds, servers: max(local, 3), burn: burn,
			basePort: basePort, load: cfg, plotPrefix: plotFile, out: os.Stdout})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}
	if flag.NArg() > 0 || (local > 0) == (target != "") || retries < 0 {
		fmt.Fprintln(os.Stderr, "bench: give exactly one of -local N and -target HOST:PORT (bench -h for help)")
		return 64
	}
	pol, ok := udpproxy.ParsePolicy(policy)
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown policy %q\n", policy)
		return 64
	}

	faulty := faults != (faultnet.Faults{})
	if local > 0 {
		ccfg := cluster.Config{
			Servers: local,
			Server:  udpserver.Config{Quiet: true},
			Proxy:   udpproxy.Config{Policy: pol},
			Logger:  cluster.Quiet(),
		}
		if faulty {
			ccfg.Faults = &faults
		}
		c, err := cluster.Start(ccfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer c.Close()
		cfg.Targets = []string{c.ProxyAddr.String()}
		cpuLabel = "process CPU" // the proxy and the servers run in this process too
	} else {
		cfg.Targets = strings.Split(target, ",")
	}
	statsAddr := cfg.Targets[0] // the proxy itself, for -plot: not through a relay
	if faulty {
		// A relay in front of each target: the bench's hop misbehaves too.
		for i, tg := range cfg.Targets {
			r, err := faultnet.Start(faultnet.Config{Target: tg, Forward: faults, Backward: faults, Seed: cfg.Seed + uint64(i)})
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return 64
			}
			defer r.Close()
			cfg.Targets[i] = r.Addr().String()
		}
	}
	var loads *loadRecorder
	if plotFile != "" {
		if cfg.Timeline == 0 {
			cfg.Timeline = 100 * time.Millisecond
		}
		loads = recordLoad(cfg.Timeline, func() (string, error) { return askText(statsAddr, "stats\n") })
	}
	if !noProg && isTerminal(os.Stderr) {
		cfg.Progress = func(s flood.Snapshot) { fmt.Fprintf(os.Stderr, "\r\033[K%s", s.Line()) }
	}
	res, err := flood.Run(ctx, cfg)
	if res != nil {
		res.CPULabel = cpuLabel
	}
	if cfg.Progress != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 64
	}
	if loads != nil {
		if err := writePlot(plotFile, "discal: "+strings.Join(cfg.Targets, ", "), res.Timeline, loads.finish()); err != nil {
			fmt.Fprintln(os.Stderr, "bench: plot:", err)
			return 1
		}
	}
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

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
