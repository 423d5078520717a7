package udpproxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/netlist"
)

// roster is what the poller needs of the membership: the servers at an
// address, a way to check a joined server's report and to drop one, and a
// word when a server's state changed.
type rosterView interface {
	byStatus(netip.AddrPort) []*Server
	byCalc(netip.AddrPort) []*Server
	verify(s *Server, st codec.Status, first bool) bool
	remove(s *Server, why string)
	changed()
}

// poller keeps every server's report fresh and its state right: it asks
// each status port for its load, and each ejected server's calculator port
// for a canary answer (health.go). Each server has its own ticker
// goroutine, jittered so that polls do not go out in lockstep; one reader
// takes the answers from the shared poll socket.
type poller struct {
	conn    *net.UDPConn
	cfg     *Config
	members rosterView
	health  *health
	drop    func(dropReason) // counts a datagram on the poll socket that answers nothing
	// mu guards load: the reader updates it with every report, the fleet
	// loop recomputes it, and a server that leaves the list is taken out.
	mu   sync.Mutex
	load *loadModel
}

// forget takes a server that left the list out of the load model.
func (pl *poller) forget(s *Server) {
	pl.mu.Lock()
	pl.load.leave(s)
	pl.mu.Unlock()
}

// recompute works out what is about the whole fleet in the load model:
// the cost of a request and every group's background.
func (pl *poller) recompute() {
	pl.mu.Lock()
	pl.load.recompute()
	pl.mu.Unlock()
}

// run polls s until ctx ends. A poll that has no answer within the poll
// timeout is a miss, and the next poll goes at once rather than a whole
// interval later: MaxMisses in a row take s out of rotation, so a dead
// server is out within about PollTimeout×MaxMisses of its first missed
// poll, less than three intervals after it died. Down servers are polled
// every interval too, and come back on their first answer.
func (pl *poller) run(ctx context.Context, s *Server, seed [32]byte) {
	r := rand.New(rand.NewChaCha8(seed))
	buf := make([]byte, 0, codec.MaxDatagram)
	cfg := pl.cfg
	// A random first delay spreads the servers' phases across an interval.
	t := time.NewTimer(time.Duration(r.Int64N(int64(cfg.Poll))))
	defer t.Stop()
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for wait() {
		// A fresh unguessable ID per poll: a forged status reply would
		// have to guess it to put a lie about load in the report.
		id := r.Uint64() | 1 // never 0, which means "not awaiting"
		s.pollID.Store(id)
		buf = codec.AppendStatusQuery(buf[:0], id)
		_, _ = pl.conn.WriteToUDPAddrPort(buf, s.status)
		if pl.health.canaryDue(s, nanotime()) {
			pl.sendCanary(s, r.Uint64()|1, buf)
		}
		t.Reset(cfg.PollTimeout)
		if !wait() {
			return
		}
		// ±25% jitter around the interval, counted from when the poll went.
		next := cfg.Poll*3/4 + time.Duration(r.Int64N(int64(cfg.Poll)/2+1)) - cfg.PollTimeout
		if s.pollID.CompareAndSwap(id, 0) && pl.missed(s) { // still unanswered: a miss
			if s.removed.Load() {
				return
			}
			next = 0 // ask again at once: is it gone, or was a datagram lost?
		}
		t.Reset(max(next, 0))
	}
}

// missed counts a poll s left unanswered; it reports whether s is still
// worth asking again at once (it has not been given up on).
func (pl *poller) missed(s *Server) bool {
	cfg := pl.cfg
	n := s.misses.Add(1)
	if int(n) >= cfg.MaxMisses && s.source == fromJoin {
		// A server that joined is forgotten once it stops answering: if it
		// comes back, it joins again.
		s.down.Store(true)
		pl.members.remove(s, "missed polls")
		return true
	}
	if int(n) >= cfg.MaxMisses && !s.down.Swap(true) {
		pl.members.changed()
		cfg.Logger.Warn("udpproxy: server out of rotation", "server", s.Name(), "addr", s.addr.Calc, "missed_polls", n)
	}
	return !s.down.Load()
}

// canary is the calculation sent to an ejected server's calculator port.
// Its operands are the ID's low bits, so that only a server that really
// computed it answers it right.
func canary(id uint64) (codec.Request, codec.Number) {
	a, b := int64(id>>40), int64(id&0xffff)
	return codec.Request{Op: codec.OpAdd, A: codec.IntNumber(a), B: codec.IntNumber(b)}, codec.IntNumber(a + b)
}

func (pl *poller) sendCanary(s *Server, id uint64, buf []byte) {
	req, _ := canary(id)
	s.health.canaryID.Store(id)
	buf = codec.AppendRequest(buf[:0], id, req)
	_, _ = pl.conn.WriteToUDPAddrPort(buf, s.calc)
}

// read takes status replies and canary answers until the socket closes.
func (pl *poller) read() {
	in := make([]byte, codec.MaxDatagram+1)
	for {
		n, from, err := pl.conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if isClosed(err) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		h, err := codec.ParseHeader(in[:n])
		switch {
		case err != nil:
			pl.drop(dropStatus)
		case h.Kind == codec.KindStatusReply:
			pl.handleStatus(in[:n], h.ID, from)
		case h.Kind == codec.KindReply:
			pl.handleCanary(in[:n], h.ID, from)
		default:
			pl.drop(dropStatus)
		}
	}
}

// handleCanary returns an ejected server to rotation when it answers its
// canary right, from its calculator port.
func (pl *poller) handleCanary(pkt []byte, id uint64, from netip.AddrPort) {
	for _, s := range pl.members.byCalc(from) {
		if id != 0 && netlist.SameAddrPort(s.calc, from) && s.health.canaryID.CompareAndSwap(id, 0) {
			_, want := canary(id)
			if r, err := codec.DecodeReply(pkt[codec.HeaderSize:]); err == nil && r.Err == nil && r.Result == want {
				pl.health.back(s, nanotime())
			}
			return
		}
	}
	pl.drop(dropStatus)
}

func (pl *poller) handleStatus(pkt []byte, id uint64, from netip.AddrPort) {
	// Decode first: a reply that cannot be read is no answer, and the poll
	// it claims to answer counts as missed.
	st, err := codec.DecodeStatus(pkt[codec.HeaderSize:])
	if err != nil {
		if errors.Is(err, codec.ErrBadText) {
			pl.drop(dropBadText) // a name that could forge a stats line or break a scrape
		} else {
			pl.drop(dropStatus)
		}
		return
	}
	var s *Server
	for _, c := range pl.members.byStatus(from) {
		// Taking the ID answers the poll exactly once, even if the next
		// poll goes out meanwhile.
		if netlist.SameAddrPort(c.status, from) && c.pollID.CompareAndSwap(id, 0) {
			s = c
			break
		}
	}
	if s == nil {
		pl.drop(dropStatus)
		return
	}
	r := &report{Status: st, at: nanotime()}
	first := s.report.Load() == nil
	if !pl.members.verify(s, st, first) {
		return
	}
	pl.mu.Lock()
	if !s.removed.Load() { // else forget has run, or is waiting to
		pl.load.update(s, s.report.Load(), figures(s, r), r.at)
	}
	pl.mu.Unlock()
	s.report.Store(r)
	s.misses.Store(0)
	drainingChanged := s.draining.Swap(st.Draining) != st.Draining
	cameBack := s.down.Swap(false)
	if drainingChanged || cameBack {
		pl.members.changed()
	}
	if drainingChanged {
		pl.cfg.Logger.Info("udpproxy: server draining", "server", s.Name(), "draining", st.Draining)
	}
	if cameBack {
		msg := "udpproxy: server back in rotation"
		if first {
			msg = "udpproxy: server in rotation"
		}
		pl.cfg.Logger.Info(msg, "server", s.Name(), "addr", s.addr.Calc)
	}
}
