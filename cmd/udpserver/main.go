// Command udpserver runs one discal calculator server.
//
//	udpserver [-addr 127.0.0.1:7001] [-status-addr 127.0.0.1:7101] [-name s1] [-quiet] [-join PROXY]
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
	"github.com/discal/discal/udpserver"
)

const usage = `udpserver: a discal calculator server.

Usage:
  udpserver [flags]

It computes add, sub, mul and div on the calculator port and reports its
load on the status port; both take the binary protocol and plain text.

Examples:
  udpserver
  udpserver -addr 127.0.0.1:7002 -status-addr 127.0.0.1:7102 -name s2
  printf '6 * 7\n' | nc -u -w1 127.0.0.1 7001
  printf 'status\n' | nc -u -w1 127.0.0.1 7101
  udpserver -burn 0.8                           # a server that looks busy
  printf 'burn 0\n' | nc -u -w1 127.0.0.1 7101  # stop burning
  printf 'drain\n' | nc -u -w1 127.0.0.1 7101   # lame duck: proxies send no new work
  udpserver -addr 0.0.0.0:7001 -status-addr 0.0.0.0:7101 -allow 10.0.0.5   # behind a proxy at 10.0.0.5
  udpserver -addr 0.0.0.0:7001 -status-addr 0.0.0.0:7101 -join 10.0.0.5:7000 # announce itself to that proxy

` + cli.EnvHelp + `
Flags:
`

func main() {
	var cfg udpserver.Config
	flag.StringVar(&cfg.Addr, "addr", udpserver.DefaultAddr, "calculator port `address`")
	flag.StringVar(&cfg.StatusAddr, "status-addr", udpserver.DefaultStatusAddr, "status port `address`")
	flag.StringVar(&cfg.Name, "name", "", "server `name` in replies and logs (default: the calculator address)")
	flag.BoolVar(&cfg.Quiet, "quiet", false, "do not log every operation")
	flag.IntVar(&cfg.Workers, "workers", 0, "requests computed at once (default 2×GOMAXPROCS, at least 4)")
	flag.Float64Var(&cfg.Burn, "burn", 0, "keep this `fraction` (0-1) of one core busy, to demonstrate load-aware balancing; change it live with 'burn F' on the status port")
	metricsAddr := flag.String("metrics-addr", "", "serve Prometheus metrics at http://`address`/metrics (default: off)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until the process stops")
	grace := flag.Duration("drain-grace", 500*time.Millisecond, "on SIGTERM, report draining this long before stopping, so that proxies send no new work (a few of their poll intervals)")
	allow := flag.String("allow", "127.0.0.0/8,::1", "answer only these `networks` (CIDR or addresses, comma-separated), e.g. the proxy's address")
	var join joinList
	flag.Var(&join, "join", "announce this server to the proxy at `host:port` (its client port) every -join-interval, so it routes work here; repeat for more proxies. The proxy's address is allowed too")
	flag.DurationVar(&cfg.JoinInterval, "join-interval", time.Second, "how often to announce the server to each -join proxy")
	common := cli.Register(flag.CommandLine, "udpserver")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.CommandLine.Init("udpserver", flag.ContinueOnError)
	if err := common.Parse(flag.CommandLine, os.Args[1:], os.Stderr, "join"); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, cli.ErrVersion) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "udpserver:", err)
		os.Exit(64)
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "udpserver: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(64)
	}
	var err error
	if cfg.Allow, err = udpserver.ParseAllow(*allow); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(64)
	}
	cfg.Join = join
	srv, err := udpserver.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(64)
	}
	stopObserving, err := cli.Observe(*cpuprofile, *metricsAddr, srv.Collector())
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpserver:", err)
		os.Exit(1)
	}
	defer stopObserving()
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-done:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case s := <-sig:
		// Lame duck first: proxies see "draining" at their next poll and
		// send no new work; what they sent is answered. Then stop.
		slog.Info("udpserver draining", "signal", s.String(), "grace", grace.String())
		srv.Drain()
		select {
		case <-time.After(*grace):
		case <-sig: // a second signal: stop now
		}
		slog.Info("udpserver stopping")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "udpserver:", err)
	}
	if err := <-done; !errors.Is(err, udpserver.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// joinList is the repeatable -join flag.
type joinList []string

func (l *joinList) String() string { return strings.Join(*l, " ") }

func (l *joinList) Set(v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("want host:port, the proxy's client port: %w", err)
	}
	*l = append(*l, v)
	return nil
}
