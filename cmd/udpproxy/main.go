// Command udpproxy runs the discal load balancer.
//
//	udpproxy [-addr 127.0.0.1:7000] -server CALC_ADDR,STATUS_ADDR ... [-join-allow NETS] [-server-srv NAME] [-control-key FILE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/internal/controlkey"
	"github.com/discal/discal/internal/netlist"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpproxy/dashboard"
)

const usage = `udpproxy: the discal load balancer.

Usage:
  udpproxy [flags]

It takes requests on one UDP port and sends each to the least-loaded
server, which it learns by polling every server's status port. SIGINT or
SIGTERM drains, then stops; SIGHUP looks -server-srv up again at once and
never stops it.

Examples:
  udpproxy -server 127.0.0.1:7001,127.0.0.1:7101 -server 127.0.0.1:7002,127.0.0.1:7102
  udpproxy -addr 0.0.0.0:7000 -join-allow 10.0.0.0/24      # servers join: udpserver -join 10.0.0.5:7000
  udpproxy -addr 0.0.0.0:7000 -join-allow 10.0.0.0/24 -control-key /etc/discal/control.key  # sealed joins only
  udpproxy -server-srv _calc._udp.discal.example.          # servers from DNS SRV records
  udpproxy -server-srv calc.service.consul. -srv-dns 127.0.0.1:8600   # from Consul's DNS
  printf '6 * 7\n' | nc -u -w1 127.0.0.1 7000
  printf 'stats\n' | nc -u -w1 127.0.0.1 7000
  udpproxy -http-addr 127.0.0.1:9100 ...                    # /metrics, /healthz, /readyz

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

func main() { os.Exit(run(os.Args[1:])) }

// options are the flags beyond udpproxy.Config's own.
type options struct {
	cfg        udpproxy.Config
	httpAddr   string
	httpHosts  []string // -http-host: names the dashboard answers to
	cpuprofile string
	grace      time.Duration // -drain-grace
}

// run is main with an exit status, so that deferred work (the CPU profile)
// is done on every way out.
func run(args []string) int {
	o, code := parseFlags(args, os.Stdout, os.Stderr)
	if o == nil {
		return code
	}
	p, err := udpproxy.New(o.cfg)
	if err != nil {
		return cli.UsageError(os.Stderr, "udpproxy", err)
	}
	stopProfile, err := cli.StartProfile(o.cpuprofile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpproxy:", err)
		return cli.ExitFailure
	}
	defer stopProfile()
	// From SIGTERM, /readyz says 503 while the proxy answers for -drain-grace.
	lame := cli.NewLameDuck(p.Ready)
	if o.httpAddr != "" {
		h, err := cli.NewHTTP("udpproxy", lame.Ready, p.Collector())
		if err == nil {
			// The dashboard, /status.json and /calc; /calc asks the
			// proxy's own client port, as any client would.
			d := dashboard.NewWithConfig(p, dashboard.Config{CalcAddr: loopback(o.cfg.Addr), Hosts: o.httpHosts})
			for _, pattern := range dashboard.Patterns {
				h.Handle(pattern, d)
			}
			_, err = h.Start(o.httpAddr)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "udpproxy:", err)
			return cli.ExitFailure
		}
		defer h.Stop()
	}
	return cli.Daemon{
		Name:     "udpproxy",
		Serve:    p.ListenAndServe,
		Closed:   udpproxy.ErrServerClosed,
		Shutdown: p.Shutdown,
		Drain:    lame.Drain,
		Grace:    o.grace,
		Reload:   p.Rediscover, // looks -server-srv up now; nothing else is re-read
	}.Run()
}

// parseFlags reads the command line and the environment. A nil options
// means stop now with the exit status code: -h and -version print on
// stdout, a usage error one line on stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (*options, int) {
	fs := flag.NewFlagSet("udpproxy", flag.ContinueOnError)
	o := &options{}
	cfg := &o.cfg
	var servers serverList
	var policy string
	fs.StringVar(&cfg.Addr, "addr", udpproxy.DefaultAddr, "client-facing `address`")
	fs.Var(&servers, "server", "a server as `CALC_ADDR,STATUS_ADDR`; repeat for more (default "+udpproxy.DefaultServer.String()+")")
	fs.DurationVar(&cfg.Poll, "poll", udpproxy.DefaultPoll, "status poll `interval`, jittered ±25%")
	fs.IntVar(&cfg.PollBudget, "poll-budget", udpproxy.DefaultPollBudget, "status polls a second at most, all servers together: past -poll-budget × -poll servers, each is polled less often (negative: no budget)")
	fs.DurationVar(&cfg.PollTimeout, "poll-timeout", 0, "a poll unanswered this long is missed and the next goes at once (default poll/3)")
	fs.DurationVar(&cfg.TryTimeout, "try-timeout", udpproxy.DefaultTryTimeout, "how long to wait for a server before trying another")
	fs.IntVar(&cfg.Tries, "tries", udpproxy.DefaultTries, "servers to try per request before answering timeout (1: no retries)")
	fs.IntVar(&cfg.MaxPending, "max-pending", udpproxy.DefaultMaxPending, "requests waiting for an answer before new ones get busy")
	fs.IntVar(&cfg.MaxFails, "max-fails", udpproxy.DefaultMaxFails, "tries in a row at one server without an answer that eject it (passive health)")
	fs.DurationVar(&cfg.EjectTime, "eject-time", udpproxy.DefaultEjectTime, "how long an ejected server stays out at least (doubled on repeats); it returns when its calculator port answers a canary")
	fs.IntVar(&cfg.MaxEjectPercent, "max-eject-percent", udpproxy.DefaultMaxEjectPercent, "the most servers ejected at once, in percent of the list (negative: never eject)")
	fs.Float64Var(&cfg.HedgeBudget, "hedge-budget", udpproxy.DefaultHedgeBudget, "hedge a try that waited past its server's recent 95th percentile reply time (1-50 ms) by sending a copy to another server, for at most this `percent` of the requests; 0 turns hedging off")
	fs.StringVar(&policy, "policy", "least-load", "server choice: least-load, round-robin or random")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", 0, "requests a second each source address may send; beyond, they are dropped and counted (default: no limit)")
	fs.IntVar(&cfg.RateBurst, "rate-burst", 0, "requests a source may send at once above its rate (default rate/10, at least 10)")
	fs.IntVar(&cfg.Readers, "readers", 0, "goroutines reading each socket (default GOMAXPROCS/2, at least 1)")
	upstreamAddr := fs.String("upstream-addr", "", "bind the sockets towards the servers to this local `IP` (default: any; on a host with several addresses, the one the servers' -allow expects)")
	joinAllow := fs.String("join-allow", "", "accept joins (udpserver -join) from these `networks`, CIDR or addresses, comma-separated (default: no joins)")
	fs.StringVar(&cfg.SRV, "server-srv", "", "find servers in the DNS SRV records of `name`; each status port is its calculator port plus -srv-status-offset. SIGHUP looks it up again at once")
	fs.DurationVar(&cfg.SRVInterval, "srv-interval", udpproxy.DefaultSRVInterval, "how often to look -server-srv up again")
	fs.IntVar(&cfg.SRVStatusOffset, "srv-status-offset", udpproxy.DefaultSRVStatusOffset, "a server's status port minus its calculator port, for servers found by -server-srv")
	srvDNS := fs.String("srv-dns", "", "ask this DNS server (`host:port`) for -server-srv, e.g. Consul's 127.0.0.1:8600 (default: the system's resolver)")
	fs.IntVar(&cfg.MaxServers, "max-servers", udpproxy.DefaultMaxServers, "servers in the list at most, however they came")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile to `file` until the process stops")
	fs.DurationVar(&o.grace, "drain-grace", 0, "on SIGTERM, go on answering this long while /readyz says 503, so that a load balancer (kube-proxy) moves clients away before the port closes; then answer what is pending and stop")
	keyFile := fs.String("control-key", "", "the shared key `file` (at least 32 random bytes, that only its owner may write and others may not read; its group may read it if the process is in it; make one with udpserver -gen-key) that seals control messages: joins from any host but loopback are taken only sealed with it, and join acks are sealed")
	common := cli.Register(fs, "udpproxy")
	httpAddr := common.HTTPAddr(fs)
	httpHosts := common.HTTPHosts(fs)
	if code, done := common.ParseCommandLine(fs, args, usage, stdout, stderr, "server", "http-host"); done {
		return nil, code
	}
	if cfg.HedgeBudget == 0 {
		cfg.NoHedge = true
	}
	if o.grace < 0 {
		return nil, cli.UsageError(stderr, "udpproxy", fmt.Errorf("-drain-grace %v: must not be negative", o.grace))
	}
	o.httpAddr = *httpAddr
	o.httpHosts = *httpHosts
	cfg.Servers = servers
	if *keyFile != "" {
		key, err := controlkey.Load(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "udpproxy: -control-key:", err)
			return nil, cli.ExitFailure
		}
		cfg.ControlKey = key
	}
	if *upstreamAddr != "" {
		ip, err := netip.ParseAddr(*upstreamAddr)
		if err != nil {
			return nil, cli.UsageError(stderr, "udpproxy", fmt.Errorf("-upstream-addr %q: want an IP address", *upstreamAddr))
		}
		cfg.UpstreamAddr = ip
	}
	if err := check(fs, cfg, policy, *joinAllow, *srvDNS, o.httpAddr); err != nil {
		return nil, cli.UsageError(stderr, "udpproxy", err)
	}
	return o, 0
}

// loopback is addr with a wildcard host (all interfaces) made loopback:
// where this process reaches the port it listens on.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// check validates what the flag package could not, and fills cfg's
// policy, join networks and resolver.
func check(fs *flag.FlagSet, cfg *udpproxy.Config, policy, joinAllow, srvDNS, httpAddr string) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var ok bool
	if cfg.Policy, ok = udpproxy.ParsePolicy(policy); !ok {
		return fmt.Errorf("unknown policy %q (least-load, round-robin, random)", policy)
	}
	if cfg.SRVStatusOffset == 0 {
		return errors.New("-srv-status-offset 0: a status port cannot share its calculator port")
	}
	if err := errors.Join(cli.CheckAddr("addr", "udp", cfg.Addr, false), cli.CheckAddr("http-addr", "tcp", httpAddr, true)); err != nil {
		return err
	}
	var err error
	if cfg.JoinAllow, err = netlist.Parse(joinAllow); err != nil {
		return fmt.Errorf("join-allow %w", err)
	}
	if srvDNS != "" {
		if _, _, err := net.SplitHostPort(srvDNS); err != nil {
			return fmt.Errorf("srv-dns %q: want host:port", srvDNS)
		}
		cfg.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srvDNS)
		}}
	}
	return nil
}
