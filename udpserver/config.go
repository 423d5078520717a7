package udpserver

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/netlist"
	"github.com/discal/discal/internal/udpbatch"
)

// Config configures a Server. The zero value of every field means its
// default, filled in by New.
type Config struct {
	// Name identifies the server in replies, status and the operation log.
	// Default: DefaultName of the calculator port's address once it is
	// bound: that address, or the host's name and the port when it is a
	// wildcard.
	Name string
	// Addr is the calculator port's address for ListenAndServe.
	// Default "127.0.0.1:7001".
	Addr string
	// StatusAddr is the status port's address for ListenAndServe.
	// Default "127.0.0.1:7101".
	StatusAddr string
	// Workers is how many requests are computed at once: each worker reads,
	// computes and answers one datagram at a time. Default 2×GOMAXPROCS, at
	// least 4, so that one slow answer never holds up the rest.
	Workers int
	// SampleInterval is how often the CPU sampler measures. It must lie in
	// 100-250 ms: shorter intervals measure noise (the kernel counts CPU
	// time in 10 ms ticks), longer ones let the proxy act on stale figures.
	// Default 100 ms, so that a server that turns busy shows it within one
	// poll; the proxy smooths the figures.
	SampleInterval time.Duration
	// Burn keeps this fraction (0 to 1) of one core busy inside the
	// server's process, to show load-aware balancing. Changeable while
	// running with the status port's text command "burn F". Default 0.
	Burn float64
	// Allow lists the networks the server answers, on both ports; anything
	// else is dropped unanswered and counted. Default: loopback only
	// (127.0.0.0/8 and ::1). Servers behind a proxy on another host list
	// the proxy's address here.
	Allow []netip.Prefix
	// Join lists proxies (their client port, host:port) to announce the
	// server to, every JoinInterval, so that they route work to it without
	// being configured for it. Each proxy's address is added to Allow.
	Join []string
	// JoinInterval is how often the server announces itself. Default 1 s:
	// a restarted proxy learns its servers within that.
	JoinInterval time.Duration
	// ControlKey is the shared key that seals control messages (see
	// codec.Seal), at least codec.MinKeySize bytes. With it, drain,
	// undrain and burn from a source other than loopback are obeyed only
	// sealed under it, join acks likewise, and the server seals its joins.
	// Default none: every allowed source is trusted, and one that forges
	// an allowed address can drain the server.
	ControlKey []byte
	// Quiet turns off the per-operation console log.
	Quiet bool
	// OpLog receives the per-operation log. Default os.Stdout.
	OpLog io.Writer
	// Logger receives the server's own events. Default slog.Default().
	Logger *slog.Logger
}

// DefaultAllow is the networks a server answers unless told otherwise:
// loopback.
func DefaultAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// ParseAllow reads a comma-separated list of networks (CIDR) or single
// addresses, as the -allow flag takes them.
func ParseAllow(list string) ([]netip.Prefix, error) {
	nets, err := netlist.Parse(list)
	if err != nil {
		return nil, fmt.Errorf("udpserver: allow %w", err)
	}
	return nets, nil
}

// maxName bounds a server's name, which goes into every reply.
const maxName = 64

// DefaultName is the name of a server whose Config.Name is empty, from the
// address its calculator socket is bound to: that address, or, when it is
// a wildcard (all interfaces, 0.0.0.0 or [::]), the host's name and the
// port. Servers in containers all listen on [::]:7001; their host names
// tell them apart (in Kubernetes the host name is the pod's name).
func DefaultName(calc net.Addr) string { return defaultName(calc, os.Hostname) }

func defaultName(calc net.Addr, hostname func() (string, error)) string {
	ap := udpbatch.AddrPort(calc)
	if !ap.Addr().IsUnspecified() {
		return calc.String()
	}
	host, err := hostname()
	port := ":" + strconv.Itoa(int(ap.Port()))
	// A host name may run to 64 characters and more: keep the port, which
	// tells apart two servers on one host, and as much of the host as fits.
	if err == nil {
		host = host[:min(len(host), maxName-len(port))]
	}
	if err != nil || host == "" || !validName(host) {
		return calc.String()
	}
	return host + port
}

// validName reports whether name may name a server: printable ASCII
// without spaces, at most maxName bytes.
func validName(name string) bool {
	return len(name) <= maxName && !strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' })
}

const (
	DefaultAddr       = "127.0.0.1:7001"
	DefaultStatusAddr = "127.0.0.1:7101"
)

// Validate reports the error New would return for c, without measuring or
// opening anything: a daemon checks its flags with it before it binds its
// ports, so that a bad value is a usage error.
func (c Config) Validate() error { return c.fill() }

func (c *Config) fill() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.StatusAddr == "" {
		c.StatusAddr = DefaultStatusAddr
	}
	if !validName(c.Name) {
		return fmt.Errorf("udpserver: name %q: at most %d printable characters without spaces", c.Name, maxName)
	}
	if c.Burn < 0 || c.Burn > 1 || math.IsNaN(c.Burn) {
		return fmt.Errorf("udpserver: burn %v: must lie in 0-1", c.Burn)
	}
	if c.Workers == 0 {
		c.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if c.Workers < 0 {
		return fmt.Errorf("udpserver: workers %d: must be positive", c.Workers)
	}
	if c.ControlKey != nil && len(c.ControlKey) < codec.MinKeySize {
		return fmt.Errorf("udpserver: control key of %d bytes: at least %d", len(c.ControlKey), codec.MinKeySize)
	}
	if c.Allow == nil {
		c.Allow = DefaultAllow()
	}
	if c.JoinInterval == 0 {
		c.JoinInterval = time.Second
	}
	if c.JoinInterval < 10*time.Millisecond {
		return fmt.Errorf("udpserver: join interval %v: must be at least 10ms", c.JoinInterval)
	}
	// A proxy the server joins polls it and sends it work: it must be
	// answered. Its address is looked up once, here; a proxy that sends
	// from another address needs -allow.
	for _, j := range c.Join {
		a, err := net.ResolveUDPAddr("udp", j)
		if err != nil {
			return fmt.Errorf("udpserver: join %q: %w", j, err)
		}
		ip := a.AddrPort().Addr().Unmap()
		if !ip.IsValid() || ip.IsUnspecified() || a.Port == 0 {
			return fmt.Errorf("udpserver: join %q: name the proxy's host and client port", j)
		}
		if !netlist.Contains(c.Allow, ip) {
			c.Allow = append(c.Allow[:len(c.Allow):len(c.Allow)], netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = 100 * time.Millisecond
	}
	if c.SampleInterval < 100*time.Millisecond || c.SampleInterval > 250*time.Millisecond {
		return fmt.Errorf("udpserver: sample interval %v: must lie in 100ms-250ms", c.SampleInterval)
	}
	if c.OpLog == nil {
		c.OpLog = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}
