// Package discaltest starts a whole discal system in one process for tests
// and benchmarks, as net/http/httptest starts a server: calculator servers
// and a proxy in front of them, on 127.0.0.1:0 ports, with servers a test
// can stop and restart and, on request, a fault-injecting relay
// (internal/faultnet) in front of each. No shipped binary links it:
// cmd/discal wires its own proxy and servers, so that a change made for a
// test never changes what users run.
package discaltest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/discal/discal/internal/faultnet"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// Config describes a cluster. Zero values mean defaults.
type Config struct {
	// Servers is how many calculator servers to start. Default 3.
	Servers int
	// ProxyAddr is the proxy's client-facing address. Default 127.0.0.1:0.
	ProxyAddr string
	// ServerAddr gives server i's (0-based) calculator and status
	// addresses. Default: a port of its own on 127.0.0.1 for each
	// (ListenKept), so that a server stopped and restarted finds its ports
	// free.
	ServerAddr func(i int) (calc, status string)
	// Server is the template for every server's Config; Name defaults to
	// s1, s2, ... and the addresses come from ServerAddr.
	Server udpserver.Config
	// Proxy is the template for the proxy's Config; Servers is filled in.
	Proxy udpproxy.Config
	// Logger receives the servers' and the proxy's events unless their
	// templates name one. Default slog.Default().
	Logger *slog.Logger
	// Faults, when set, puts a fault-injecting relay between the proxy and
	// each server's calculator port, with these faults both ways.
	Faults *faultnet.Faults
}

// Cluster is a running system.
type Cluster struct {
	Proxy     *udpproxy.Proxy
	ProxyAddr *net.UDPAddr
	Servers   []*Server
	Relays    []*faultnet.Relay // with Config.Faults, one in front of each server

	proxyDone chan error
}

// Server is one running calculator server, which a test can stop and start
// again on the same ports.
type Server struct {
	Name               string
	CalcAddr, StatAddr *net.UDPAddr

	cfg  udpserver.Config
	mu   sync.Mutex
	srv  *udpserver.Server
	done chan error
}

// Start starts the servers, then the proxy, each on sockets it has already
// bound, so the cluster is ready to serve when Start returns.
func Start(cfg Config) (*Cluster, error) {
	if cfg.Servers == 0 {
		cfg.Servers = 3
	}
	if cfg.ProxyAddr == "" {
		cfg.ProxyAddr = "127.0.0.1:0"
	}
	if cfg.ServerAddr == nil {
		cfg.ServerAddr = func(int) (string, string) { return keptAddr, keptAddr }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cluster{proxyDone: make(chan error, 1)}
	fail := func(err error) (*Cluster, error) {
		c.Close()
		return nil, err
	}
	var addrs []udpproxy.ServerAddr
	for i := range cfg.Servers {
		calc, status := cfg.ServerAddr(i)
		scfg := cfg.Server
		if scfg.Name == "" {
			scfg.Name = fmt.Sprintf("s%d", i+1)
		}
		if scfg.Logger == nil {
			scfg.Logger = cfg.Logger
		}
		s := &Server{Name: scfg.Name, cfg: scfg}
		if err := s.listenAndStart(calc, status); err != nil {
			return fail(err)
		}
		c.Servers = append(c.Servers, s)
		calcAddr := s.CalcAddr.String()
		if cfg.Faults != nil {
			r, err := faultnet.Start(faultnet.Config{Target: calcAddr, Forward: *cfg.Faults, Backward: *cfg.Faults, Seed: uint64(i + 1)})
			if err != nil {
				return fail(err)
			}
			c.Relays = append(c.Relays, r)
			calcAddr = r.Addr().String()
		}
		addrs = append(addrs, udpproxy.ServerAddr{Calc: calcAddr, Status: s.StatAddr.String()})
	}
	pcfg := cfg.Proxy
	pcfg.Servers = addrs
	if pcfg.Logger == nil {
		pcfg.Logger = cfg.Logger
	}
	p, err := udpproxy.New(pcfg)
	if err != nil {
		return fail(err)
	}
	conn, err := net.ListenPacket("udp", cfg.ProxyAddr)
	if err != nil {
		return fail(fmt.Errorf("testcluster: proxy: %w", err))
	}
	c.Proxy, c.ProxyAddr = p, conn.LocalAddr().(*net.UDPAddr)
	go func() { c.proxyDone <- p.Serve(conn) }()
	if err := WaitServing(p, c.proxyDone); err != nil {
		return fail(err)
	}
	return c, nil
}

// keptAddr, as a server's address, asks for a port of its own on
// 127.0.0.1 (ListenKept).
const keptAddr = ""

// listenServerPort opens one of a server's ports at addr, or at a kept
// port for keptAddr.
func listenServerPort(addr string) (net.PacketConn, error) {
	if addr != keptAddr {
		return net.ListenPacket("udp", addr)
	}
	c, err := ListenKept(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}

func (s *Server) listenAndStart(calcAddr, statusAddr string) error {
	calc, err := listenServerPort(calcAddr)
	if err != nil {
		return fmt.Errorf("testcluster: server %s: %w", s.Name, err)
	}
	status, err := listenServerPort(statusAddr)
	if err != nil {
		calc.Close()
		return fmt.Errorf("testcluster: server %s: %w", s.Name, err)
	}
	srv, err := udpserver.New(s.cfg)
	if err != nil {
		calc.Close()
		status.Close()
		return err
	}
	s.CalcAddr, s.StatAddr = calc.LocalAddr().(*net.UDPAddr), status.LocalAddr().(*net.UDPAddr)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(calc, status) }()
	s.mu.Lock()
	s.srv, s.done = srv, done
	s.mu.Unlock()
	return nil
}

// Running returns the server while it runs, nil while it is stopped.
func (s *Server) Running() *udpserver.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Stop shuts the server down, finishing what it is computing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if serr := <-done; !errors.Is(serr, udpserver.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Restart starts a stopped server again on the same ports.
func (s *Server) Restart() error {
	if s.Running() != nil {
		return fmt.Errorf("testcluster: server %s is running", s.Name)
	}
	return s.listenAndStart(s.CalcAddr.String(), s.StatAddr.String())
}

// Shutdown stops the proxy, letting pending requests finish, then the
// servers.
func (c *Cluster) Shutdown(ctx context.Context) error {
	var errs []error
	if c.Proxy != nil {
		errs = append(errs, c.Proxy.Shutdown(ctx))
		if err := <-c.proxyDone; !errors.Is(err, udpproxy.ErrServerClosed) {
			errs = append(errs, err)
		}
		c.Proxy = nil
	}
	for _, s := range c.Servers {
		errs = append(errs, s.Stop(ctx))
	}
	for _, r := range c.Relays {
		errs = append(errs, r.Close())
	}
	c.Relays = nil
	return errors.Join(errs...)
}

// Close stops everything at once.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// discard is a logger for callers that want silence.
var discard = slog.New(slog.DiscardHandler)

// Quiet returns a logger that drops everything.
func Quiet() *slog.Logger { return discard }
