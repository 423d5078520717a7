package udpproxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/discal/discal/codec"
)

// ServerAddr names one calculator server: where its calculator port takes
// requests and where its status port answers load queries.
type ServerAddr struct {
	Calc   string
	Status string
}

// ParseServerAddr reads the -server flag form "CALC_ADDR,STATUS_ADDR".
func ParseServerAddr(s string) (ServerAddr, error) {
	calc, status, ok := strings.Cut(s, ",")
	if !ok || calc == "" || status == "" || strings.Contains(status, ",") {
		return ServerAddr{}, fmt.Errorf("udpproxy: server %q: want CALC_ADDR,STATUS_ADDR", s)
	}
	return ServerAddr{Calc: calc, Status: status}, nil
}

func (a ServerAddr) String() string { return a.Calc + "," + a.Status }

// Config configures a Proxy. The zero value of every field means its
// default, filled in by New.
type Config struct {
	// Addr is the client-facing address for ListenAndServe.
	// Default "127.0.0.1:7000".
	Addr string
	// UpstreamAddr is the local IP address that the proxy's own sockets
	// towards the servers (requests, status polls, canaries) bind to, on a
	// port of the kernel's choosing. On a host with several addresses it
	// fixes the source the servers see, which their -allow lists expect
	// and which a joined server's proxy is. Default: unset, any address
	// (the kernel picks one per route).
	UpstreamAddr netip.Addr
	// Servers are the calculator servers the proxy always routes to (while
	// they answer polls). Default: the one default server, 127.0.0.1:7001
	// with status port 127.0.0.1:7101, unless servers may join or come
	// from DNS.
	Servers []ServerAddr
	// JoinAllow lists the networks from which servers may join (udpserver
	// -join): a join from elsewhere is dropped and counted. A joined
	// server leaves after MaxMisses missed polls. Default: none, no joins.
	JoinAllow []netip.Prefix
	// ControlKey is the shared key that seals control messages (see
	// codec.Seal), at least codec.MinKeySize bytes, the servers' own. With
	// it, a join from a source that is not loopback is taken only sealed
	// under it (the rest are dropped as "unauthenticated"), and join acks
	// are sealed. Default none: any join from inside JoinAllow is taken,
	// forged or not.
	ControlKey []byte
	// SRV, when set, is a DNS name whose SRV records list servers by their
	// calculator port; each one's status port is that plus SRVStatusOffset.
	// It is looked up again every SRVInterval, and servers come and go as
	// the answer changes.
	SRV string
	// SRVInterval is how often SRV is looked up again. Default 30 s.
	SRVInterval time.Duration
	// SRVStatusOffset is a server's status port minus its calculator port,
	// for servers found through SRV. Default 100, as discal's own defaults
	// (7001 and 7101).
	SRVStatusOffset int
	// Resolver looks SRV up. Default net.DefaultResolver.
	Resolver *net.Resolver
	// MaxServers bounds the servers in the list, however they came, so a
	// flood of joins cannot grow it without end. Default 1024; the choice
	// costs the same whatever the number (policy.go).
	MaxServers int
	// Poll is how often each server's status port is asked for its load,
	// jittered by ±25% so that servers are not polled in lockstep.
	// Default 100 ms.
	Poll time.Duration
	// PollBudget is the most status polls a second the proxy sends, all
	// servers together. Up to PollBudget×Poll servers (200 by default)
	// each is polled every Poll; beyond, every server is polled less often,
	// so that the cost of polling stays flat however large the fleet: on
	// loopback a thousand servers at 100 ms cost the proxy 16% of a core
	// (measured; most of it the kernel's delivery of each poll, charged to
	// the sender), and 6% within the default budget. What a large fleet
	// loses in report freshness, the live in-flight counts and passive
	// health (which watches every request) make up. Default 2000; negative
	// means no budget.
	PollBudget int
	// PollTimeout is how long a poll waits for its answer before it counts
	// as missed and the next poll goes at once. Default Poll/3: a status
	// port answers from memory, so on a LAN its answer takes well under a
	// millisecond; raise it for servers far away.
	PollTimeout time.Duration
	// MaxMisses is how many polls in a row a server may leave unanswered
	// before it leaves the rotation. Default 3.
	MaxMisses int
	// TryTimeout is how long the proxy waits for a server's answer before
	// it tries another. Default 250 ms: loopback answers take well under a
	// millisecond, so this only fires for a lost datagram or a dead server.
	TryTimeout time.Duration
	// Tries is how many servers a request is sent to, one after another,
	// before the client is told "timeout". Default 2: one retry; 1 means
	// no retries.
	Tries int
	// MaxFails is how many tries in a row at one server may go unanswered
	// before passive health ejects it (health.go). Default 5.
	MaxFails int
	// EjectTime is how long an ejected server stays out at least, doubled
	// each time it is ejected again soon after it came back (up to 32
	// times). It returns once this has passed and its calculator port has
	// answered a canary calculation. Default 1 s.
	EjectTime time.Duration
	// MaxEjectPercent bounds the share of the servers that may be ejected
	// at once, so that a network blip cannot empty the rotation. Default
	// 50; with fewer than two servers nothing is ejected. A negative value
	// means 0: passive health ejects no one.
	MaxEjectPercent int
	// NoHedge turns hedged requests off. By default a try that has waited
	// longer than its server's recent 95th percentile reply time (at least
	// 1 ms, at most 50 ms) is also sent to another server in rotation, and
	// the first answer is relayed (hedge.go).
	NoHedge bool
	// HedgeBudget bounds the hedges, in percent of the requests read, so
	// that an overloaded fleet is not asked twice as much. Default 5.
	HedgeBudget float64
	// MaxPending bounds the requests waiting for an answer; beyond it new
	// requests are answered "busy". Default 32768, about 20 MiB at most.
	MaxPending int
	// RateLimit, when positive, is how many requests a second each source
	// address may send; beyond it requests are dropped and counted. Off by
	// default.
	RateLimit float64
	// RateBurst is how many requests a source may send at once above its
	// rate. Default: RateLimit/10, at least 10.
	RateBurst int
	// Readers is how many goroutines read each of the two hot sockets.
	// Default GOMAXPROCS/2, at least 1: a reader handles a whole batch per
	// system call, and more readers than that only split batches (measured:
	// 5% fewer requests a second with 2 per socket on 2 cores).
	Readers int
	// Policy chooses a server for each request. Default LeastLoad.
	Policy Policy
	// Logger receives the proxy's events. Default slog.Default().
	Logger *slog.Logger
}

// The defaults of Config, which the udpproxy command's flags show too.
const (
	DefaultAddr            = "127.0.0.1:7000"
	DefaultSRVInterval     = 30 * time.Second
	DefaultSRVStatusOffset = 100
	DefaultMaxServers      = 1024
	DefaultPoll            = 100 * time.Millisecond
	DefaultPollBudget      = 2000
	DefaultMaxMisses       = 3
	DefaultTryTimeout      = 250 * time.Millisecond
	DefaultTries           = 2
	DefaultMaxPending      = 32768
	DefaultMaxFails        = 5
	DefaultEjectTime       = time.Second
	DefaultMaxEjectPercent = 50
	DefaultHedgeBudget     = 5.0
)

// DefaultServer is the server the proxy uses when none is configured.
var DefaultServer = ServerAddr{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"}

func (c *Config) fill() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.ControlKey != nil && len(c.ControlKey) < codec.MinKeySize {
		return fmt.Errorf("udpproxy: control key of %d bytes: at least %d", len(c.ControlKey), codec.MinKeySize)
	}
	if len(c.Servers) == 0 && len(c.JoinAllow) == 0 && c.SRV == "" {
		c.Servers = []ServerAddr{DefaultServer}
	}
	if c.SRVInterval == 0 {
		c.SRVInterval = DefaultSRVInterval
	}
	if c.SRVStatusOffset == 0 {
		c.SRVStatusOffset = DefaultSRVStatusOffset
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.MaxServers == 0 {
		c.MaxServers = DefaultMaxServers
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.PollBudget == 0 {
		c.PollBudget = DefaultPollBudget
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = c.Poll / 3
	}
	if c.MaxMisses == 0 {
		c.MaxMisses = DefaultMaxMisses
	}
	if c.TryTimeout == 0 {
		c.TryTimeout = DefaultTryTimeout
	}
	if c.Tries == 0 {
		c.Tries = DefaultTries
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxFails == 0 {
		c.MaxFails = DefaultMaxFails
	}
	if c.EjectTime == 0 {
		c.EjectTime = DefaultEjectTime
	}
	if c.MaxEjectPercent == 0 {
		c.MaxEjectPercent = DefaultMaxEjectPercent
	}
	if c.HedgeBudget == 0 {
		c.HedgeBudget = DefaultHedgeBudget
	}
	if c.RateLimit > 0 && c.RateBurst == 0 {
		c.RateBurst = max(10, int(c.RateLimit/10))
	}
	if c.Readers == 0 {
		c.Readers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if c.Policy == nil {
		c.Policy = LeastLoad()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c.validate()
}

// validate checks a filled Config.
func (c *Config) validate() error {
	switch {
	case c.Poll < time.Millisecond:
		return fmt.Errorf("udpproxy: poll interval %v: must be at least 1ms", c.Poll)
	case c.PollTimeout <= 0 || c.PollTimeout > c.Poll:
		return fmt.Errorf("udpproxy: poll timeout %v: must lie in (0, poll interval]", c.PollTimeout)
	case c.TryTimeout < time.Millisecond:
		return fmt.Errorf("udpproxy: try timeout %v: must be at least 1ms", c.TryTimeout)
	case c.MaxMisses < 1, c.Tries < 1, c.MaxPending < 1, c.Readers < 1, c.MaxFails < 1:
		return fmt.Errorf("udpproxy: misses, tries, max pending, readers and max fails must be positive")
	case c.EjectTime < time.Millisecond:
		return fmt.Errorf("udpproxy: eject time %v: must be at least 1ms", c.EjectTime)
	case c.MaxEjectPercent > 100:
		return fmt.Errorf("udpproxy: max eject percent %d: at most 100", c.MaxEjectPercent)
	case c.HedgeBudget < 0 || c.HedgeBudget > 100:
		return fmt.Errorf("udpproxy: hedge budget %v%%: must lie in 0-100", c.HedgeBudget)
	case c.RateLimit < 0 || c.RateBurst < 0:
		return fmt.Errorf("udpproxy: rate limit and burst must not be negative")
	case c.Tries > 255:
		return fmt.Errorf("udpproxy: tries %d: at most 255", c.Tries)
	case c.MaxServers < len(c.Servers):
		return fmt.Errorf("udpproxy: max servers %d: fewer than the %d configured", c.MaxServers, len(c.Servers))
	case c.SRVInterval < 100*time.Millisecond:
		return fmt.Errorf("udpproxy: SRV interval %v: must be at least 100ms", c.SRVInterval)
	case c.SRVStatusOffset < -65535 || c.SRVStatusOffset > 65535:
		return fmt.Errorf("udpproxy: SRV status offset %d: out of range", c.SRVStatusOffset)
	}
	return nil
}

// resolveUDP resolves a host:port once, at start, into the form that the
// reply path compares sources with.
func resolveUDP(s string) (netip.AddrPort, error) {
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("udpproxy: resolve %q: %w", s, err)
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
