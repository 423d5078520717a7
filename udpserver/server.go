package udpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/lifecycle"
	"github.com/discal/discal/internal/loglimit"
	"github.com/discal/discal/internal/netlist"
	"github.com/discal/discal/internal/udpbatch"
)

// Server is a calculator server. Create it with New, start it with Serve or
// ListenAndServe, stop it with Shutdown or Close.
type Server struct {
	cfg     Config
	name    string
	sampler *sampler
	burner  *burner
	oplog   *opLog
	joiner  *joiner      // nil without Config.Join
	started atomic.Int64 // Unix nanoseconds when Serve started
	// calcPort is the calculator socket's port, once serving: status
	// replies carry it, so a proxy can check what a join claims.
	calcPort atomic.Uint32

	inFlight atomic.Int64
	served   atomic.Uint64                  // requests answered
	failed   atomic.Uint64                  // of those, answered with an error
	dropped  atomic.Uint64                  // datagrams that could not be answered
	draining atomic.Bool                    // going away: the status port says so, proxies send no new work
	ops      [codec.OpDiv + 1]atomic.Uint64 // operations computed, by kind
	codes    [maxCode]atomic.Uint64         // answers with an error, by code
	denied   atomic.Uint64                  // datagrams from sources not allowed
	// unauthenticated counts control messages refused for want of a seal
	// that checks (see control.go).
	unauthenticated atomic.Uint64
	auth            *codec.Authenticator // nil without Config.ControlKey
	noLoopback      bool                 // tests: loopback needs a seal too, as a host across the network

	life        lifecycle.Life
	mu          sync.Mutex // guards name (set by Serve), calc and status
	calc        net.PacketConn
	status      net.PacketConn
	workers     sync.WaitGroup
	readLog     loglimit.Limit
	deniedLog   loglimit.Limit // refused.go
	unsealedLog loglimit.Limit // refused.go
}

// New returns a server for cfg, with defaults filled in.
func New(cfg Config) (*Server, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		name:    cfg.Name, // "" until Serve, which then names the server after its calculator address (DefaultName)
		sampler: samplerFor(cfg.SampleInterval),
		burner:  newBurner(cfg.Burn),
		oplog:   newOpLog(cfg.OpLog, cfg.Logger),
	}
	if len(cfg.Join) > 0 {
		s.joiner = newJoiner(s)
	}
	if cfg.ControlKey != nil {
		a, err := codec.NewAuthenticator(cfg.ControlKey)
		if err != nil {
			return nil, fmt.Errorf("udpserver: control key: %w", err)
		}
		s.auth = a
	}
	return s, nil
}

// Name returns the server's name: Config.Name, or, when that is empty,
// DefaultName of the calculator socket's address once Serve has started.
func (s *Server) Name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// Addr returns the calculator socket's address once Serve has started, and
// nil before: where a server whose Config.Addr asked for port 0 listens.
func (s *Server) Addr() net.Addr { return s.localAddr(&s.calc) }

// StatusAddr returns the status socket's address once Serve has started,
// and nil before.
func (s *Server) StatusAddr() net.Addr { return s.localAddr(&s.status) }

func (s *Server) localAddr(conn *net.PacketConn) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *conn == nil {
		return nil
	}
	return (*conn).LocalAddr()
}

// ListenAndServe opens the calculator and status ports of the Config and
// serves them until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	calc, err := net.ListenPacket("udp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("udpserver: calculator port: %w", err)
	}
	status, err := net.ListenPacket("udp", s.cfg.StatusAddr)
	if err != nil {
		calc.Close()
		return fmt.Errorf("udpserver: status port: %w", err)
	}
	return s.Serve(calc, status)
}

// Serve answers calculator requests on calc and status queries on status
// until Shutdown or Close, then returns ErrServerClosed. If a socket fails
// or is closed under it, Serve stops and returns that error instead. Serve
// takes ownership of both sockets and closes them when it returns.
//
// Any net.PacketConn serves, through one path (internal/udpbatch): a
// *net.UDPConn (what net.ListenPacket("udp", ...) returns) is read and
// written in batches without allocating; any other socket one datagram at
// a time, at the cost of an allocation or two per datagram for its
// addresses.
func (s *Server) Serve(calc, status net.PacketConn) error {
	if !s.life.Start(func() { lifecycle.WakeReads(calc, status) }) {
		calc.Close()
		status.Close()
		return ErrServerClosed
	}
	s.mu.Lock()
	s.calc, s.status = calc, status
	if s.name == "" {
		s.name = DefaultName(calc.LocalAddr())
	}
	s.mu.Unlock()
	s.started.Store(time.Now().UnixNano())
	s.calcPort.Store(uint32(udpbatch.AddrPort(calc.LocalAddr()).Port()))

	ctx, stop := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	defer s.sampler.start()()
	bg.Go(func() { s.burner.run(ctx) })
	if s.joiner != nil {
		bg.Go(func() { s.joiner.run(ctx, status, uint16(s.calcPort.Load())) })
	}
	go s.oplog.run() // not waited for here: a stalled console must not hold up Serve

	s.cfg.Logger.Info("udpserver serving", "name", s.name,
		"calc", calc.LocalAddr().String(), "status", status.LocalAddr().String(), "workers", s.cfg.Workers)
	s.startLoops(calc, status)
	s.workers.Wait()

	stop()
	bg.Wait()
	close(s.oplog.stop)
	calc.Close()
	status.Close()
	return s.life.Finish(ErrServerClosed)
}

// startLoops starts the calculator workers and the status reader.
func (s *Server) startLoops(calc, status net.PacketConn) {
	for range s.cfg.Workers {
		s.workers.Go(func() { s.calcLoop(calc) })
	}
	s.workers.Go(func() { s.statusLoop(status) })
}

// Shutdown stops reading new datagrams, lets every request already being
// computed finish and be answered, closes the sockets and waits until the
// operation log is written out. If ctx ends first, it closes the sockets at
// once, stops waiting for the log, and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.life.Stop() {
		return nil
	}
	if err := s.life.Wait(ctx, s.closeSockets); err != nil {
		return err
	}
	select {
	case <-s.oplog.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeSockets ends every read and write at once, for a Shutdown whose
// context ended.
func (s *Server) closeSockets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calc.Close()
	s.status.Close()
}

// Close stops the server at once: requests being computed are dropped.
func (s *Server) Close() error { return lifecycle.Close(s.Shutdown) }

// Ready reports whether the server should be given work: it is serving and
// not draining. reason says why not, in a few words, for a health endpoint.
func (s *Server) Ready() (ok bool, reason string) {
	switch {
	case !s.life.Serving():
		return false, "not serving"
	case s.Draining():
		return false, "draining"
	}
	return true, ""
}

// readError decides what a failed read means. When the server is stopping
// it is the wake-up, and the loop ends. A closed socket is the end of the
// server: Serve stops the other loops and returns the error. Anything else
// (an ICMP error reported on the socket, a short buffer) is transient: it
// is logged, at most once a second, and skipped.
func (s *Server) readError(err error) (stop bool) {
	if s.life.Stopping() {
		return true
	}
	if errors.Is(err, net.ErrClosed) {
		s.life.Fail(fmt.Errorf("udpserver: socket closed under the server: %w", err))
		return true
	}
	if s.readLog.Allow() {
		s.cfg.Logger.Warn("udpserver read", "name", s.name, "err", err)
	}
	return false
}

// Drain makes the server report that it is going away, so that proxies send
// it no new work, while it goes on answering what still comes. Undrain
// takes it back. Shutdown after a drain loses nothing: by then the proxies
// have stopped sending.
func (s *Server) Drain() { s.draining.Store(true) }

// Undrain ends a drain.
func (s *Server) Undrain() { s.draining.Store(false) }

// Draining reports whether the server is draining.
func (s *Server) Draining() bool { return s.draining.Load() }

// Burn returns the fraction of a core the server keeps busy on purpose.
func (s *Server) Burn() float64 { return s.burner.get() }

// SetBurn changes the fraction of a core the server keeps busy on purpose.
func (s *Server) SetBurn(frac float64) { s.burner.set(frac) }

// Stats is a snapshot of a server's counters.
type Stats struct {
	Served, Errors, Dropped uint64
	Denied                  uint64 // datagrams from sources not allowed, dropped
	InFlight                int64
	LogDropped              uint64 // operation log lines dropped because the console fell behind
	// Unauthenticated counts control messages (drain, undrain, burn, join
	// acks) refused, unanswered, because Config.ControlKey is set and
	// their seal did not check or they had none.
	Unauthenticated uint64
}

// allowed reports whether a source may use the server.
func (s *Server) allowed(from netip.AddrPort) bool { return netlist.Contains(s.cfg.Allow, from.Addr()) }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Served:     s.served.Load(),
		Errors:     s.failed.Load(),
		Dropped:    s.dropped.Load(),
		Denied:     s.denied.Load(),
		InFlight:   s.inFlight.Load(),
		LogDropped: s.oplog.dropped.Load(),

		Unauthenticated: s.unauthenticated.Load(),
	}
}
