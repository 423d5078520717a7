// Command discal runs a whole local discal system in one process: a proxy
// and several calculator servers on loopback.
//
//	go run ./cmd/discal [-servers 3] [-addr 127.0.0.1:7000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/internal/cluster"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
	"github.com/prometheus/client_golang/prometheus"
)

const usage = `discal: a whole local discal system in one process.

Usage:
  discal [flags]

It starts a proxy and N calculator servers on loopback and logs every
operation under the server's name. Stop it with Ctrl-C.

Examples:
  go run ./cmd/discal
  go run ./cmd/discal -servers 5 -quiet
  printf '6 * 7\n' | nc -u -w1 127.0.0.1 7000

` + cli.EnvHelp + `
Flags:
`

func main() {
	var (
		servers    int
		addr       string
		calcPort   int
		statusPort int
		quiet      bool
		policy     string
	)
	flag.IntVar(&servers, "servers", 3, "number of calculator servers")
	flag.StringVar(&addr, "addr", udpproxy.DefaultAddr, "the proxy's `address`")
	flag.IntVar(&calcPort, "server-port", 7001, "first server's calculator `port`; the others count up from it (0: any free ports)")
	flag.IntVar(&statusPort, "status-port", 7101, "first server's status `port`; the others count up from it (0: any free ports)")
	flag.BoolVar(&quiet, "quiet", false, "do not log every operation")
	flag.StringVar(&policy, "policy", "least-load", "server choice: least-load, round-robin or random")
	metricsAddr := flag.String("metrics-addr", "", "serve Prometheus metrics of the proxy and every server at http://`address`/metrics (default: off)")
	common := cli.Register(flag.CommandLine, "discal")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.CommandLine.Init("discal", flag.ContinueOnError)
	if err := common.Parse(flag.CommandLine, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, cli.ErrVersion) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "discal:", err)
		os.Exit(64)
	}
	pol, ok := udpproxy.ParsePolicy(policy)
	switch {
	case flag.NArg() > 0:
		fmt.Fprintf(os.Stderr, "discal: unexpected argument %q\n", flag.Arg(0))
		os.Exit(64)
	case servers < 1 || servers > 100:
		fmt.Fprintln(os.Stderr, "discal: -servers must be 1 to 100")
		os.Exit(64)
	case !ok:
		fmt.Fprintf(os.Stderr, "discal: unknown policy %q\n", policy)
		os.Exit(64)
	}
	c, err := cluster.Start(cluster.Config{
		Servers:   servers,
		ProxyAddr: addr,
		ServerAddr: func(i int) (string, string) {
			port := func(base int) int {
				if base == 0 {
					return 0
				}
				return base + i
			}
			return fmt.Sprintf("127.0.0.1:%d", port(calcPort)), fmt.Sprintf("127.0.0.1:%d", port(statusPort))
		},
		Server: udpserver.Config{Quiet: quiet},
		Proxy:  udpproxy.Config{Policy: pol},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "discal:", err)
		os.Exit(1)
	}
	if *metricsAddr != "" {
		cs := []prometheus.Collector{c.Proxy.Collector()}
		for _, s := range c.Servers {
			cs = append(cs, s.Running().Collector())
		}
		_, stop, err := cli.ServeMetrics(*metricsAddr, cs...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "discal: metrics:", err)
			os.Exit(1)
		}
		defer stop()
	}
	var list []string
	for _, s := range c.Servers {
		list = append(list, fmt.Sprintf("%s calc %s status %s", s.Name, s.CalcAddr, s.StatAddr))
	}
	fmt.Fprintf(os.Stderr, `discal is running: proxy on %[1]s, %[2]d servers:
  %[3]s
Send it work:
  printf '6 * 7\n' | nc -u -w1 %[4]s %[5]d
  go run ./cmd/udpclient -proxy %[1]s 7 / 2
  printf 'stats\n' | nc -u -w1 %[4]s %[5]d
Stop with Ctrl-C.
`, c.ProxyAddr, len(c.Servers), strings.Join(list, "\n  "), c.ProxyAddr.IP, c.ProxyAddr.Port)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	slog.Info("discal stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "discal:", err)
		os.Exit(1)
	}
}
