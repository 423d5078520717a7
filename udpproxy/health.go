package udpproxy

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/discal/discal/codec"
)

// poller keeps every backend's report fresh and its state right. Each
// backend has its own ticker goroutine, jittered so that polls do not go out
// in lockstep; one reader takes the answers from the shared poll socket.
type poller struct {
	p    *Proxy
	conn *net.UDPConn
	// mu guards load: the reader updates it with every report, and a
	// backend that leaves the list is taken out of it.
	mu   sync.Mutex
	load *loadModel
}

// forget takes a backend that left the list out of the load model.
func (pl *poller) forget(b *Server) {
	pl.mu.Lock()
	pl.load.leave(b)
	pl.mu.Unlock()
}

// run polls b until ctx ends. A poll that has no answer within the poll
// timeout is a miss, and the next poll goes at once rather than a whole
// interval later: MaxMisses in a row take b out of rotation, so a dead
// server is out within about PollTimeout×MaxMisses of its first missed
// poll, less than three intervals after it died. Down backends are polled
// every interval too, and come back on their first answer.
func (pl *poller) run(ctx context.Context, b *Server, seed [32]byte) {
	r := rand.New(rand.NewChaCha8(seed))
	buf := make([]byte, 0, codec.StatusQuerySize)
	cfg := &pl.p.cfg
	// A random first delay spreads the backends' phases across an interval.
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
		b.pollID.Store(id)
		buf = codec.AppendStatusQuery(buf[:0], id)
		_, _ = pl.conn.WriteToUDPAddrPort(buf, b.status)
		t.Reset(cfg.PollTimeout)
		if !wait() {
			return
		}
		// ±25% jitter around the interval, counted from when the poll went.
		next := cfg.Poll*3/4 + time.Duration(r.Int64N(int64(cfg.Poll)/2+1)) - cfg.PollTimeout
		if b.pollID.CompareAndSwap(id, 0) { // still unanswered: a miss
			n := b.misses.Add(1)
			if int(n) >= cfg.MaxMisses && b.source == fromJoin {
				// A server that joined is forgotten once it stops
				// answering: if it comes back, it joins again.
				b.down.Store(true)
				pl.p.remove(b, "missed polls")
				return
			}
			if int(n) >= cfg.MaxMisses && !b.down.Swap(true) {
				cfg.Logger.Warn("udpproxy: server out of rotation", "server", b.name(),
					"addr", b.addr.Calc, "missed_polls", n)
				pl.p.noteDraining()
			}
			if !b.down.Load() {
				next = 0 // ask again at once: is it gone, or was a datagram lost?
			}
		}
		t.Reset(max(next, 0))
	}
}

// read takes status replies until the socket closes.
func (pl *poller) read() {
	in := make([]byte, codec.MaxDatagram+1)
	for {
		n, from, err := pl.conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if pl.p.closed.Load() || isClosed(err) {
				return
			}
			continue
		}
		pl.handle(in[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
	}
}

func (pl *poller) handle(pkt []byte, from netip.AddrPort) {
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindStatusReply {
		pl.p.drops.add(dropStatus)
		return
	}
	// Decode first: a reply that cannot be read is no answer, and the poll
	// it claims to answer counts as missed.
	st, err := codec.DecodeStatus(pkt[codec.HeaderSize:])
	if err != nil {
		pl.p.drops.add(dropStatus)
		return
	}
	var b *Server
	for _, c := range pl.p.backends() {
		// Taking the ID answers the poll exactly once, even if the next
		// poll goes out meanwhile.
		if c.status == from && c.pollID.CompareAndSwap(h.ID, 0) {
			b = c
			break
		}
	}
	if b == nil {
		pl.p.drops.add(dropStatus)
		return
	}
	r := &report{Status: st, at: nanotime()}
	first := b.report.Load() == nil
	if !pl.p.verify(b, st, first) {
		return
	}
	pl.mu.Lock()
	if !b.removed.Load() { // else forget has run, or is waiting to
		pl.load.update(b, b.report.Load(), figures(b, r), r.at)
	}
	pl.mu.Unlock()
	b.report.Store(r)
	if b.draining.Swap(st.Draining) != st.Draining {
		pl.p.cfg.Logger.Info("udpproxy: server draining", "server", b.name(), "draining", st.Draining)
	}
	pl.p.noteDraining()
	b.misses.Store(0)
	if b.down.Swap(false) {
		msg := "udpproxy: server back in rotation"
		if first {
			msg = "udpproxy: server in rotation"
		}
		pl.p.cfg.Logger.Info(msg, "server", b.name(), "addr", b.addr.Calc)
	}
}
