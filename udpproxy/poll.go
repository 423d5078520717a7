package udpproxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/netlist"
	"github.com/discal/discal/internal/udpbatch"
)

// poller keeps every server's report fresh and its state right: it asks
// each status port for its load, and each ejected server's calculator port
// for a canary answer (health.go). What the answers say it keeps in the
// servers' polled fields and its load model, and tells the membership,
// which decides what they mean for the rotation. It also works out the
// fleet's figures that every choice reads (score.go).
//
// One goroutine schedules every poll and one reads every answer, however
// many servers there are: each tick (a twentieth of the interval) the
// scheduler sends, in one sendmmsg, the polls that are due, each server on
// its own jittered phase so that polls do not go out in lockstep, and
// counts as missed the polls left unanswered past PollTimeout. A
// goroutine and two timers per server cost the proxy a fifth of a core at
// a thousand idle servers, in wake-ups alone; this costs a few percent.
type poller struct {
	conn    net.PacketConn
	cfg     *Config
	members *membership
	drops   *dropCounters         // a datagram on the poll socket that answers nothing is counted here
	fleet   atomic.Pointer[fleet] // the fleet's figures, from the fleet loop

	// mu guards load: the reader updates it with every report, and the
	// fleet loop recomputes it.
	mu   sync.Mutex
	load *loadModel
}

func newPoller(cfg *Config, members *membership, drops *dropCounters) *poller {
	pl := &poller{cfg: cfg, members: members, drops: drops, load: newLoadModel()}
	pl.fleet.Store(newFleet(members.servers(), nanotime()))
	return pl
}

// fleetLoop works out, every fleetEvery, what is about the whole fleet:
// the load model's cost and backgrounds, and the figures scores use.
func (pl *poller) fleetLoop(ctx context.Context) {
	t := time.NewTicker(fleetEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pl.refresh()
		}
	}
}

// refresh works out the load model's cost and backgrounds, then the
// fleet's figures from them.
func (pl *poller) refresh() {
	pl.mu.Lock()
	pl.load.recompute()
	pl.mu.Unlock()
	pl.fleet.Store(newFleet(pl.members.servers(), nanotime()))
}

// tick is how often the scheduler looks for polls that are due: a
// twentieth of the interval (the ±25% jitter is kept to within 5%), and
// at most a quarter of the poll timeout, so that a miss is seen soon
// after it happens; between 1 and 10 ms.
func (pl *poller) tick() time.Duration {
	return max(min(pl.cfg.Poll/20, pl.cfg.PollTimeout/4, 10*time.Millisecond), time.Millisecond)
}

// run schedules polls until ctx ends. A poll that has no answer within the
// poll timeout is a miss, and the next poll goes at once rather than a
// whole interval later: MaxMisses in a row take the server out of
// rotation, so a dead server is out within about PollTimeout×MaxMisses of
// its first missed poll, less than three intervals after it died. Down
// servers are polled every interval too, and come back on their first
// answer.
func (pl *poller) run(ctx context.Context, seed [32]byte) {
	r := rand.New(rand.NewChaCha8(seed))
	w := udpbatch.NewWriter(pl.conn, udpbatch.Options{Batch: batch})
	var out []udpbatch.Message
	var slab []byte
	tick := pl.tick()
	t := time.NewTimer(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := nanotime()
		servers := pl.members.servers()
		every := pollEvery(pl.cfg, len(servers))
		wake := now + int64(every) // the next moment anything is due
		// A poll and a canary per server at most: room for all, so that
		// appending never moves what the messages point to.
		if need := 2 * len(servers) * codec.StatusQuerySize; cap(slab) < need {
			slab = make([]byte, 0, need)
		}
		out, slab = out[:0], slab[:0]
		for _, s := range servers {
			if s.polled.every.Load() != int64(every) {
				s.polled.every.Store(int64(every))
			}
			out, slab = pl.due(s, now, r, out, slab)
			wake = min(wake, s.polled.sched.wake(pl.cfg.PollTimeout))
		}
		for len(out) > 0 {
			n := min(len(out), batch)
			_, _ = w.WriteBatch(out[:n])
			out = out[n:]
		}
		// Sleep until something is due, a tick at least: a few servers
		// cost a wake-up per poll, a thousand one per tick, with every
		// poll due in it sent in one call.
		t.Reset(max(time.Duration(wake-nanotime()), tick))
	}
}

// wake is when s next needs the scheduler: its next poll, or the timeout
// of the poll awaiting an answer.
func (ps *pollSchedule) wake(timeout time.Duration) int64 {
	if ps.sentAt != 0 {
		return min(ps.next, ps.sentAt+int64(timeout))
	}
	return ps.next
}

// due counts s's poll as missed if its time is up, and appends to out the
// datagrams s is due now: a poll, and a canary if it is ejected and its
// time is up. Their bytes go in slab.
func (pl *poller) due(s *Server, now int64, r *rand.Rand, out []udpbatch.Message, slab []byte) ([]udpbatch.Message, []byte) {
	cfg, ps := pl.cfg, &s.polled.sched
	if ps.sentAt != 0 && now-ps.sentAt >= int64(cfg.PollTimeout) {
		ps.sentAt = 0
		// Taking the ID settles the poll exactly once: an answer that
		// comes now finds it gone and counts as a stray.
		if s.polled.pollID.CompareAndSwap(ps.id, 0) && pl.members.missed(s) {
			ps.next = now // ask again at once: is it gone, or was a datagram lost?
		}
	}
	if s.removed.Load() {
		return out, slab
	}
	every := s.polled.every.Load()
	if ps.next == 0 {
		ps.next = now + r.Int64N(every) // a random phase for a server new to the schedule
	}
	if now < ps.next || ps.sentAt != 0 {
		return out, slab
	}
	// A fresh unguessable ID per poll: a forged status reply would have to
	// guess it to put a lie about load in the report.
	ps.id, ps.sentAt = r.Uint64()|1, now // never 0, which means "not awaiting"
	s.polled.pollID.Store(ps.id)
	// ±25% jitter around the interval.
	ps.next = now + every*3/4 + r.Int64N(every/2+1)
	slab, out = appendMsg(slab, out, s.status, func(b []byte) []byte { return codec.AppendStatusQuery(b, ps.id) })
	if canaryDue(s, now) {
		id := r.Uint64() | 1
		req, _ := canary(id)
		s.polled.canaryID.Store(id)
		slab, out = appendMsg(slab, out, s.calc, func(b []byte) []byte { return codec.AppendRequest(b, id, req) })
	}
	return out, slab
}

// pollEvery is the interval each of n servers is polled at: Poll, or
// longer when n servers at Poll would exceed PollBudget polls a second.
func pollEvery(cfg *Config, n int) time.Duration {
	if cfg.PollBudget <= 0 {
		return cfg.Poll
	}
	return max(cfg.Poll, time.Duration(n)*time.Second/time.Duration(cfg.PollBudget))
}

// appendMsg appends a datagram to slab, written by enc, and a message for
// it, to addr, to out.
func appendMsg(slab []byte, out []udpbatch.Message, addr netip.AddrPort, enc func([]byte) []byte) ([]byte, []udpbatch.Message) {
	start := len(slab)
	slab = enc(slab)
	return slab, append(out, udpbatch.Message{Buf: slab[start:len(slab):len(slab)], Addr: addr})
}

// canary is the calculation sent to an ejected server's calculator port.
// Its operands are the ID's low bits, so that only a server that really
// computed it answers it right.
func canary(id uint64) (codec.Request, codec.Number) {
	a, b := int64(id>>40), int64(id&0xffff)
	return codec.Request{Op: codec.OpAdd, A: codec.IntNumber(a), B: codec.IntNumber(b)}, codec.IntNumber(a + b)
}

// read takes status replies and canary answers, a batch at a time, until
// the socket closes.
func (pl *poller) read() {
	rd := udpbatch.NewReader(pl.conn, udpbatch.Options{Batch: batch, MaxSize: codec.MaxDatagram})
	in := make([]udpbatch.Message, batch)
	for {
		n, err := rd.ReadBatch(in)
		if err != nil {
			if isClosed(err) {
				return
			}
			continue
		}
		for _, m := range in[:n] {
			pl.handle(m.Buf, m.Addr)
		}
	}
}

func (pl *poller) handle(pkt []byte, from netip.AddrPort) {
	h, err := codec.ParseHeader(pkt)
	switch {
	case err != nil:
		pl.drops.add(dropStatus)
	case h.Kind == codec.KindStatusReply:
		pl.handleStatus(pkt, h.ID, from)
	case h.Kind == codec.KindReply:
		pl.handleCanary(pkt, h.ID, from)
	default:
		pl.drops.add(dropStatus)
	}
}

// handleCanary returns an ejected server to rotation when it answers its
// canary right, from its calculator port.
func (pl *poller) handleCanary(pkt []byte, id uint64, from netip.AddrPort) {
	for _, s := range pl.members.byCalc(from) {
		if id != 0 && netlist.SameAddrPort(s.calc, from) && s.polled.canaryID.CompareAndSwap(id, 0) {
			_, want := canary(id)
			if r, err := codec.DecodeReply(pkt[codec.HeaderSize:]); err == nil && r.Err == nil && r.Result == want {
				pl.members.back(s, nanotime())
			}
			return
		}
	}
	pl.drops.add(dropStatus)
}

func (pl *poller) handleStatus(pkt []byte, id uint64, from netip.AddrPort) {
	// Decode first: a reply that cannot be read is no answer, and the poll
	// it claims to answer counts as missed.
	st, err := codec.DecodeStatus(pkt[codec.HeaderSize:])
	if err != nil {
		if errors.Is(err, codec.ErrBadText) {
			pl.drops.add(dropBadText) // a name that could forge a stats line or break a scrape
		} else {
			pl.drops.add(dropStatus)
		}
		return
	}
	var s *Server
	for _, c := range pl.members.byStatus(from) {
		// Taking the ID answers the poll exactly once, even if the next
		// poll goes out meanwhile.
		if netlist.SameAddrPort(c.status, from) && c.polled.pollID.CompareAndSwap(id, 0) {
			s = c
			break
		}
	}
	if s == nil {
		pl.drops.add(dropStatus)
		return
	}
	r := &report{Status: st, at: nanotime()}
	prev := s.polled.report.Load()
	if !pl.members.verify(s, st, prev == nil) {
		return
	}
	pl.mu.Lock()
	if !s.removed.Load() { // else the model forgets it at its next recompute
		pl.load.update(s, prev, figures(s, r), r.at)
	}
	pl.mu.Unlock()
	s.polled.report.Store(r)
	pl.members.reported(s, st.Draining, prev == nil)
}
