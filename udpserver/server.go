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
	"github.com/discal/discal/internal/netlist"
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

	mu       sync.Mutex
	calc     *net.UDPConn
	status   *net.UDPConn
	closing  atomic.Bool
	serving  bool
	done     chan struct{} // closed when Serve's goroutines have all ended
	workers  sync.WaitGroup
	errLimit rateLimitedLog
}

// New returns a server for cfg, with defaults filled in.
func New(cfg Config) (*Server, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		name:    cfg.Name,
		sampler: newSampler(cfg.SampleInterval),
		burner:  newBurner(cfg.Burn),
		oplog:   newOpLog(cfg.OpLog, cfg.Logger),
		done:    make(chan struct{}),
	}
	if len(cfg.Join) > 0 {
		s.joiner = newJoiner(s)
	}
	return s, nil
}

// Name returns the server's name, known once Serve has started.
func (s *Server) Name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
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

// Serve answers calculator requests on calc and status queries on status,
// both UDP sockets, until Shutdown or Close; it then returns ErrServerClosed.
// Serve takes ownership of both sockets and closes them when it returns.
func (s *Server) Serve(calc, status net.PacketConn) error {
	cu, ok1 := calc.(*net.UDPConn)
	su, ok2 := status.(*net.UDPConn)
	if !ok1 || !ok2 {
		calc.Close()
		status.Close()
		return errors.New("udpserver: Serve needs UDP sockets")
	}
	s.mu.Lock()
	if s.serving || s.closing.Load() {
		s.mu.Unlock()
		cu.Close()
		su.Close()
		return ErrServerClosed
	}
	s.serving = true
	s.calc, s.status = cu, su
	if s.name == "" {
		s.name = cu.LocalAddr().String()
	}
	s.started.Store(time.Now().UnixNano())
	s.calcPort.Store(uint32(cu.LocalAddr().(*net.UDPAddr).Port))
	s.mu.Unlock()

	ctx, stop := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { s.sampler.run(ctx) })
	bg.Go(func() { s.burner.run(ctx) })
	if s.joiner != nil {
		bg.Go(func() { s.joiner.run(ctx, su, uint16(s.calcPort.Load())) })
	}
	go s.oplog.run() // not waited for here: a stalled console must not hold up Serve

	s.cfg.Logger.Info("udpserver serving", "name", s.name,
		"calc", cu.LocalAddr().String(), "status", su.LocalAddr().String(), "workers", s.cfg.Workers)
	for range s.cfg.Workers {
		s.workers.Go(func() { s.calcLoop(cu) })
	}
	s.workers.Go(func() { s.statusLoop(su) })
	s.workers.Wait()

	stop()
	bg.Wait()
	close(s.oplog.stop)
	cu.Close()
	su.Close()
	close(s.done)
	return ErrServerClosed
}

// Shutdown stops reading new datagrams, lets every request already being
// computed finish and be answered, closes the sockets and waits until the
// operation log is written out. If ctx ends first, it closes the sockets at
// once, stops waiting for the log, and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.stopReading() {
		return nil
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.mu.Lock()
		s.calc.Close()
		s.status.Close()
		s.mu.Unlock()
		<-s.done
		return ctx.Err()
	}
	select {
	case <-s.oplog.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the server at once: requests being computed are dropped.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// stopReading marks the server closing and wakes its readers with a past
// deadline: a blocked read returns, a worker in the middle of a request
// finishes it first. It reports whether Serve is running and must be waited
// for.
func (s *Server) stopReading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	if !s.serving {
		return false
	}
	past := time.Unix(1, 0)
	_ = s.calc.SetReadDeadline(past)
	_ = s.status.SetReadDeadline(past)
	return true
}

// readError decides what a failed read means: the end of the loop when the
// server is closing or the socket is gone, otherwise a transient error that
// is logged (at most once a second) and skipped.
func (s *Server) readError(err error) (stop bool) {
	if s.closing.Load() || errors.Is(err, net.ErrClosed) {
		return true
	}
	if s.errLimit.allow() {
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
	}
}

// rateLimitedLog lets one message through per second, so that a socket in
// a bad state cannot flood the log.
type rateLimitedLog struct{ last atomic.Int64 }

func (r *rateLimitedLog) allow() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(time.Second) && r.last.CompareAndSwap(last, now)
}
