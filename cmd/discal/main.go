// Command discal runs a whole local discal system in one process: a proxy
// and several calculator servers on loopback.
//
//	go run ./cmd/discal [-servers 3] [-addr 127.0.0.1:7000]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpproxy/dashboard"
	"github.com/discal/discal/udpserver"
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

func main() { os.Exit(run(os.Args[1:])) }

// run is main with an exit status, so that deferred work is done on every
// way out.
func run(args []string) int {
	cfg, httpAddr, code := parseFlags(args, os.Stdout, os.Stderr)
	if cfg == nil {
		return code
	}
	sys, err := newSystem(*cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "discal:", err)
		return cli.ExitFailure
	}
	if httpAddr != "" {
		h, err := cli.NewHTTP("discal", sys.proxy.Ready, sys.collectors()...)
		if err == nil {
			d := dashboard.NewWithConfig(sys.proxy, dashboard.Config{CalcAddr: sys.proxyConn.LocalAddr().String(), Hosts: cfg.httpHosts})
			for _, pattern := range dashboard.Patterns {
				h.Handle(pattern, d)
			}
			_, err = h.Start(httpAddr)
		}
		if err != nil {
			sys.closeSockets()
			fmt.Fprintln(os.Stderr, "discal:", err)
			return cli.ExitFailure
		}
		defer h.Stop()
	}
	var list []string
	for _, s := range sys.servers {
		list = append(list, fmt.Sprintf("%s calc %s status %s", s.Name(), s.calc.LocalAddr(), s.status.LocalAddr()))
	}
	proxy := sys.proxyConn.LocalAddr().(*net.UDPAddr)
	banner := func() {
		fmt.Fprintf(os.Stderr, `discal is running: proxy on %[1]s, %[2]d servers:
  %[3]s
Send it work:
  printf '6 * 7\n' | nc -u -w1 %[4]s %[5]d
  go run ./cmd/udpclient -proxy %[1]s 7 / 2
  printf 'stats\n' | nc -u -w1 %[4]s %[5]d
Stop with Ctrl-C.
`, proxy, len(sys.servers), strings.Join(list, "\n  "), proxy.IP, proxy.Port)
	}
	// The banner once the signals are caught: a script that sends SIGHUP
	// on reading it must not end the process.
	return cli.Daemon{Name: "discal", Serve: sys.Serve, Closed: errStopped, Shutdown: sys.Shutdown, Started: banner}.Run()
}

// parseFlags reads the command line and the environment. A nil config
// means stop now with the exit status code: -h and -version print on
// stdout, a usage error one line on stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (cfg *systemConfig, httpAddr string, code int) {
	var (
		servers    int
		addr       string
		calcPort   int
		statusPort int
		quiet      bool
		policy     string
	)
	fs := flag.NewFlagSet("discal", flag.ContinueOnError)
	fs.IntVar(&servers, "servers", 3, "number of calculator servers")
	fs.StringVar(&addr, "addr", udpproxy.DefaultAddr, "the proxy's `address`")
	fs.IntVar(&calcPort, "server-port", 7001, "first server's calculator `port`; the others count up from it (0: any free ports)")
	fs.IntVar(&statusPort, "status-port", 7101, "first server's status `port`; the others count up from it (0: any free ports)")
	fs.BoolVar(&quiet, "quiet", false, "do not log every operation")
	fs.StringVar(&policy, "policy", "least-load", "server choice: least-load, round-robin or random")
	common := cli.Register(fs, "discal")
	http := common.HTTPAddr(fs)
	httpHosts := common.HTTPHosts(fs)
	if code, done := common.ParseCommandLine(fs, args, usage, stdout, stderr, "http-host"); done {
		return nil, "", code
	}
	pol, ok := udpproxy.ParsePolicy(policy)
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case servers < 1 || servers > 100:
		err = errors.New("-servers must be 1 to 100")
	case !ok:
		err = fmt.Errorf("unknown policy %q", policy)
	case calcPort < 0 || statusPort < 0 || calcPort+servers > 65536 || statusPort+servers > 65536:
		err = errors.New("-server-port and -status-port must leave room for every server below 65536")
	default:
		err = errors.Join(cli.CheckAddr("addr", "udp", addr, false), cli.CheckAddr("http-addr", "tcp", *http, true))
	}
	if err != nil {
		return nil, "", cli.UsageError(stderr, "discal", err)
	}
	port := func(base, i int) int {
		if base == 0 {
			return 0 // any free port
		}
		return base + i
	}
	return &systemConfig{
		proxyAddr: addr,
		servers:   servers,
		serverAddr: func(i int) (string, string) {
			return fmt.Sprintf("127.0.0.1:%d", port(calcPort, i)), fmt.Sprintf("127.0.0.1:%d", port(statusPort, i))
		},
		server:    udpserver.Config{Quiet: quiet},
		proxy:     udpproxy.Config{Policy: pol},
		httpHosts: *httpHosts,
	}, *http, 0
}
