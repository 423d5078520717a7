// Command udpserver runs one discal calculator server.
//
//	udpserver [-addr 127.0.0.1:7001] [-status-addr 127.0.0.1:7101] [-name s1] [-quiet] [-join PROXY] [-control-key FILE]
//	udpserver -gen-key FILE
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/internal/controlkey"
	"github.com/discal/discal/udpserver"
)

const usage = `udpserver: a discal calculator server.

Usage:
  udpserver [flags]

It computes add, sub, mul and div on the calculator port and reports its
load on the status port; both take the binary protocol and plain text.
SIGINT or SIGTERM drains, then stops; SIGHUP announces the server to its
-join proxies at once and never stops it.

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
  udpserver -gen-key /etc/discal/control.key     # make a shared key, then copy it to the proxy's host
  udpserver -addr 0.0.0.0:7001 -status-addr 0.0.0.0:7101 -join 10.0.0.5:7000 -control-key /etc/discal/control.key
                                                # only sealed drain/burn from other hosts; sealed joins
  udpserver -http-addr 127.0.0.1:9101           # /metrics, /healthz, /readyz
  curl -s 127.0.0.1:9101/readyz                 # ok, or 503 and why

` + cli.EnvHelp + `
Flags:
`

func main() { os.Exit(run(os.Args[1:])) }

// options are the flags beyond udpserver.Config's own.
type options struct {
	cfg        udpserver.Config
	httpAddr   string
	cpuprofile string
	grace      time.Duration
}

// run is main with an exit status, so that deferred work (the CPU profile)
// is done on every way out.
func run(args []string) int {
	o, code := parseFlags(args, os.Stdout, os.Stderr)
	if o == nil {
		return code
	}
	stopProfile, err := cli.StartProfile(o.cpuprofile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpserver:", err)
		return cli.ExitFailure
	}
	defer stopProfile()
	// The sockets first: a server without -name is named after its
	// calculator address (udpserver.DefaultName), and the name must be
	// known before the metrics that carry it are registered.
	calc, status, err := listen(o.cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return cli.ExitFailure
	}
	if o.cfg.Name == "" {
		o.cfg.Name = udpserver.DefaultName(calc.LocalAddr())
	}
	srv, err := udpserver.New(o.cfg)
	if err != nil { // Validate passed: only the environment can fail here
		calc.Close()
		status.Close()
		fmt.Fprintln(os.Stderr, err)
		return cli.ExitFailure
	}
	if o.httpAddr != "" {
		h, err := cli.NewHTTP("udpserver "+o.cfg.Name, srv.Ready, srv.Collector())
		if err == nil {
			_, err = h.Start(o.httpAddr)
		}
		if err != nil {
			calc.Close()
			status.Close()
			fmt.Fprintln(os.Stderr, "udpserver:", err)
			return cli.ExitFailure
		}
		defer h.Stop()
	}
	return cli.Daemon{
		Name:     "udpserver",
		Serve:    func() error { return srv.Serve(calc, status) },
		Closed:   udpserver.ErrServerClosed,
		Shutdown: srv.Shutdown,
		Drain:    srv.Drain,
		Grace:    o.grace,
		Reload:   srv.Rejoin, // the only thing to re-read: the -join proxies' addresses
	}.Run()
}

func listen(cfg udpserver.Config) (calc, status net.PacketConn, err error) {
	calc, err = net.ListenPacket("udp", cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("udpserver: calculator port: %w", err)
	}
	status, err = net.ListenPacket("udp", cfg.StatusAddr)
	if err != nil {
		calc.Close()
		return nil, nil, fmt.Errorf("udpserver: status port: %w", err)
	}
	return calc, status, nil
}

// parseFlags reads the command line and the environment. A nil options
// means stop now with the exit status code: -h and -version print on
// stdout, a usage error one line on stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (*options, int) {
	fs := flag.NewFlagSet("udpserver", flag.ContinueOnError)
	o := &options{}
	cfg := &o.cfg
	fs.StringVar(&cfg.Addr, "addr", udpserver.DefaultAddr, "calculator port `address`")
	fs.StringVar(&cfg.StatusAddr, "status-addr", udpserver.DefaultStatusAddr, "status port `address`")
	fs.StringVar(&cfg.Name, "name", "", "server `name` in replies and logs (default: the calculator address; with a wildcard -addr, as in a container, the host name and port)")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "do not log every operation")
	fs.IntVar(&cfg.Workers, "workers", 0, "requests computed at once (default 2×GOMAXPROCS, at least 4)")
	fs.Float64Var(&cfg.Burn, "burn", 0, "keep this `fraction` (0-1) of one core busy, to demonstrate load-aware balancing; change it live with 'burn F' on the status port")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile to `file` until the process stops")
	fs.DurationVar(&o.grace, "drain-grace", 500*time.Millisecond, "on SIGTERM, report draining this long before stopping, so that proxies send no new work (a few of their poll intervals)")
	allow := fs.String("allow", "127.0.0.0/8,::1", "answer only these `networks` (CIDR or addresses, comma-separated), e.g. the proxy's address")
	var join joinList
	fs.Var(&join, "join", "announce this server to the proxy at `host:port` (its client port) every -join-interval, so it routes work here; repeat for more proxies. The proxy's address is allowed too")
	fs.DurationVar(&cfg.JoinInterval, "join-interval", time.Second, "how often to announce the server to each -join proxy")
	keyFile := fs.String("control-key", "", "the shared key `file` (at least 32 random bytes, that only its owner may write and others may not read; its group may read it if the process is in it) that seals control messages: drain, undrain and burn from any host but loopback are obeyed only sealed with it, and joins are sealed; the proxy's -control-key must be the same file")
	genKey := fs.String("gen-key", "", "write a new control key (32 random bytes, mode 0600) to `file`, which must not exist, and exit")
	common := cli.Register(fs, "udpserver")
	httpAddr := common.HTTPAddr(fs)
	if code, done := common.ParseCommandLine(fs, args, usage, stdout, stderr, "join"); done {
		return nil, code
	}
	o.httpAddr = *httpAddr
	if *genKey != "" {
		if err := controlkey.Generate(*genKey); err != nil {
			fmt.Fprintln(stderr, "udpserver:", err)
			return nil, cli.ExitFailure
		}
		fmt.Fprintln(stderr, "udpserver: wrote a new control key to", *genKey)
		return nil, cli.ExitOK
	}
	if *keyFile != "" {
		key, err := controlkey.Load(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "udpserver: -control-key:", err)
			return nil, cli.ExitFailure
		}
		cfg.ControlKey = key
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	default:
		err = errors.Join(cli.CheckAddr("addr", "udp", cfg.Addr, false),
			cli.CheckAddr("status-addr", "udp", cfg.StatusAddr, false),
			cli.CheckAddr("http-addr", "tcp", o.httpAddr, true))
	}
	if err == nil {
		cfg.Allow, err = udpserver.ParseAllow(*allow)
	}
	if err == nil {
		cfg.Join = join
		err = cfg.Validate()
	}
	if err == nil && o.grace < 0 {
		err = fmt.Errorf("-drain-grace %v: must not be negative", o.grace)
	}
	if err != nil {
		return nil, cli.UsageError(stderr, "udpserver", err)
	}
	return o, 0
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
