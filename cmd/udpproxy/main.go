// Command udpproxy runs the discal load balancer.
//
//	udpproxy [-addr 127.0.0.1:7000] -server CALC_ADDR,STATUS_ADDR ... [-join-allow NETS] [-server-srv NAME]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/internal/netlist"
	"github.com/discal/discal/udpproxy"
)

const usage = `udpproxy: the discal load balancer.

Usage:
  udpproxy [flags]

It takes requests on one UDP port and sends each to the least-loaded
server, which it learns by polling every server's status port.

Examples:
  udpproxy -server 127.0.0.1:7001,127.0.0.1:7101 -server 127.0.0.1:7002,127.0.0.1:7102
  udpproxy -addr 0.0.0.0:7000 -join-allow 10.0.0.0/24      # servers join: udpserver -join 10.0.0.5:7000
  udpproxy -server-srv _calc._udp.discal.example.          # servers from DNS SRV records
  udpproxy -server-srv calc.service.consul. -srv-dns 127.0.0.1:8600   # from Consul's DNS
  printf '6 * 7\n' | nc -u -w1 127.0.0.1 7000
  printf 'stats\n' | nc -u -w1 127.0.0.1 7000

` + cli.EnvHelp + `
Flags:
`

// serverList is the repeatable -server flag.
type serverList []udpproxy.ServerAddr

func (l *serverList) String() string {
	var s []string
	for _, a := range *l {
		s = append(s, a.String())
	}
	return strings.Join(s, " ")
}

func (l *serverList) Set(v string) error {
	a, err := udpproxy.ParseServerAddr(v)
	if err != nil {
		return err
	}
	*l = append(*l, a)
	return nil
}

func main() {
	var cfg udpproxy.Config
	var servers serverList
	var policy string
	flag.StringVar(&cfg.Addr, "addr", udpproxy.DefaultAddr, "client-facing `address`")
	flag.Var(&servers, "server", "a server as `CALC_ADDR,STATUS_ADDR`; repeat for more (default "+udpproxy.DefaultServer.String()+")")
	flag.DurationVar(&cfg.Poll, "poll", 100*time.Millisecond, "status poll `interval`, jittered ±25%")
	flag.DurationVar(&cfg.PollTimeout, "poll-timeout", 0, "a poll unanswered this long is missed and the next goes at once (default poll/3)")
	flag.DurationVar(&cfg.TryTimeout, "try-timeout", 250*time.Millisecond, "how long to wait for a server before trying another")
	flag.IntVar(&cfg.Tries, "tries", 2, "servers to try per request before answering timeout")
	flag.IntVar(&cfg.MaxPending, "max-pending", 32768, "requests waiting for an answer before new ones get busy")
	flag.StringVar(&policy, "policy", "least-load", "server choice: least-load, round-robin or random")
	flag.Float64Var(&cfg.RateLimit, "rate-limit", 0, "requests a second each source address may send; beyond, they are dropped and counted (default: no limit)")
	flag.IntVar(&cfg.RateBurst, "rate-burst", 0, "requests a source may send at once above its rate (default rate/10, at least 10)")
	flag.IntVar(&cfg.Readers, "readers", 0, "goroutines reading each socket (default GOMAXPROCS/2, at least 1)")
	joinAllow := flag.String("join-allow", "", "accept joins (udpserver -join) from these `networks`, CIDR or addresses, comma-separated (default: no joins)")
	flag.StringVar(&cfg.SRV, "server-srv", "", "find servers in the DNS SRV records of `name`; each status port is its calculator port plus -srv-status-offset")
	flag.DurationVar(&cfg.SRVInterval, "srv-interval", 30*time.Second, "how often to look -server-srv up again")
	flag.IntVar(&cfg.SRVStatusOffset, "srv-status-offset", 100, "a server's status port minus its calculator port, for servers found by -server-srv")
	srvDNS := flag.String("srv-dns", "", "ask this DNS server (`host:port`) for -server-srv, e.g. Consul's 127.0.0.1:8600 (default: the system's resolver)")
	flag.IntVar(&cfg.MaxServers, "max-servers", 256, "servers in rotation at most, however they came")
	metricsAddr := flag.String("metrics-addr", "", "serve Prometheus metrics at http://`address`/metrics (default: off)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until the process stops")
	common := cli.Register(flag.CommandLine, "udpproxy")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.CommandLine.Init("udpproxy", flag.ContinueOnError)
	if err := common.Parse(flag.CommandLine, os.Args[1:], os.Stderr, "server"); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, cli.ErrVersion) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "udpproxy:", err)
		os.Exit(64)
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "udpproxy: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(64)
	}
	var ok bool
	if cfg.Policy, ok = udpproxy.ParsePolicy(policy); !ok {
		fmt.Fprintf(os.Stderr, "udpproxy: unknown policy %q (least-load, round-robin, random)\n", policy)
		os.Exit(64)
	}
	cfg.Servers = servers
	if cfg.SRVStatusOffset == 0 {
		fmt.Fprintln(os.Stderr, "udpproxy: -srv-status-offset 0: a status port cannot share its calculator port")
		os.Exit(64)
	}
	var err error
	if cfg.JoinAllow, err = netlist.Parse(*joinAllow); err != nil {
		fmt.Fprintln(os.Stderr, "udpproxy: join-allow", err)
		os.Exit(64)
	}
	if *srvDNS != "" {
		if _, _, err := net.SplitHostPort(*srvDNS); err != nil {
			fmt.Fprintf(os.Stderr, "udpproxy: srv-dns %q: want host:port\n", *srvDNS)
			os.Exit(64)
		}
		cfg.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *srvDNS)
		}}
	}
	p, err := udpproxy.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(64)
	}
	stopObserving, err := cli.Observe(*cpuprofile, *metricsAddr, p.Collector())
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpproxy:", err)
		os.Exit(1)
	}
	defer stopObserving()
	done := make(chan error, 1)
	go func() { done <- p.ListenAndServe() }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-done:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case s := <-sig:
		slog.Info("udpproxy draining", "signal", s.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "udpproxy:", err)
	}
	if err := <-done; !errors.Is(err, udpproxy.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
