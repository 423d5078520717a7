package udpproxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
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
// All of it is one goroutine, however many servers there are, and it
// sleeps whenever nothing is due. It sends the polls that fall due in a
// window together, in a few sendmmsg calls, each server on its own jittered phase
// so that proxies do not poll in lockstep. It does not wait for each
// answer: it reads what has come, in batches, when the window's poll
// timeout is up (while no request comes, when the next window's polls are
// due: wakeAt), and counts as missed the polls still unanswered then. It
// works out the fleet's figures when reports or requests have moved them.
// An idle proxy so wakes once per window, not once per poll, per answer
// and per fleet tick: each wake-up costs more than the work it does (a
// goroutine and two timers per server cost a fifth of a core at a
// thousand idle servers; a wake-up per poll and per answer, 3% of a core
// for three servers). Its socket is a Quiet one (udpbatch), so that the
// answers arriving do not wake the runtime either, nor its system calls
// the runtime's sysmon thread.
type poller struct {
	cfg      *Config
	members  *membership
	counters *counters             // drops on the poll socket; requests, to see traffic
	fleet    atomic.Pointer[fleet] // the fleet's figures, for every choice
	load     *loadModel            // the poller goroutine's alone

	conn *udpbatch.Quiet // set by Serve before run starts; read only when the poller wakes
}

func newPoller(cfg *Config, members *membership, c *counters) *poller {
	pl := &poller{cfg: cfg, members: members, counters: c, load: newLoadModel()}
	pl.fleet.Store(newFleet(members.servers(), nanotime()))
	return pl
}

// pollLoop is the state of the poller's goroutine between wake-ups.
type pollLoop struct {
	rng         *rand.Rand
	in, out     []udpbatch.Message
	slab        []byte
	next        int64  // nanotime the next poll is due, of those not awaiting an answer
	outstanding int    // polls sent and not yet answered or missed
	timeoutAt   int64  // nanotime by which the oldest of them is missed
	lazyNext    int64  // nanotime the next poll is due, of every server, while idle
	urgentAt    int64  // nanotime by which the oldest poll of a server that missed one is missed; 0: none
	seen        uint64 // requests at the last wake-up, to tell an idle proxy
	reported    bool   // reports came since the fleet's figures were worked out
	refreshedAt int64  // nanotime the fleet's figures were worked out
	requests    uint64
	hedges      hedgeDelays // each server's reply times as last read
	hedgedAt    int64       // nanotime the hedge delays were worked out
}

// run is the poller's goroutine: at each wake-up it reads the answers that
// have come, counts the polls whose time is up as missed, sends what is
// due and works out the fleet's figures if they are due, then sleeps until
// the next of these, until ctx ends or the socket closes. A poll that has
// no answer within the poll timeout is a miss, and the next poll goes at
// once rather than a whole interval later: MaxMisses in a row take the
// server out of rotation, so a dead server is out within about
// PollTimeout×MaxMisses of its first missed poll, less than three
// intervals after it died. Down servers are polled every interval too, and
// come back on their first answer.
func (pl *poller) run(ctx context.Context, seed [32]byte) {
	l := &pollLoop{rng: rand.New(rand.NewChaCha8(seed)), in: make([]udpbatch.Message, batch), hedges: hedgeDelays{}}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !pl.readReady(l) {
			return // the socket is closed: Serve is done
		}
		now := nanotime()
		pl.sendDue(l, now)
		wake := pl.wakeAt(l)
		if at, ok := pl.refreshDue(l); ok {
			if now >= at {
				l.reported, l.refreshedAt, l.requests = false, now, pl.counters.requests.Load()
				pl.refresh()
				if !pl.cfg.NoHedge && now-l.hedgedAt >= int64(hedgeEvery) {
					l.hedgedAt = now
					l.hedges.update(pl.members.servers())
				}
			} else {
				wake = min(wake, at)
			}
		}
		t.Reset(time.Duration(wake - nanotime()))
	}
}

// wakeAt is when the poller is next due to wake for its polls. While
// requests come, it reads each window's answers when their poll timeout
// is up, so that the figures every choice reads are fresh. While none
// come, nobody reads the figures, and it reads the answers when the next
// polls are due instead, once an interval rather than twice (an idle
// proxy with three servers: 0.59% of a core, against 0.36% so; with 256,
// 2.69% against 1.68%; side by side). A poll left unanswered, or an
// ejected server's canary answer, is then found at that wake-up, up to an
// interval later; a server that has missed a poll is asked again at once,
// and its timeout is a wake-up again.
func (pl *poller) wakeAt(l *pollLoop) int64 {
	requests := pl.counters.requests.Load()
	idle := requests == l.seen
	l.seen = requests
	if !idle {
		if l.outstanding > 0 {
			return min(l.next, l.timeoutAt)
		}
		return l.next
	}
	if l.urgentAt != 0 {
		return min(l.lazyNext, l.urgentAt)
	}
	return l.lazyNext
}

// readReady reads and handles every answer that has come, and reports
// false once the socket is closed.
func (pl *poller) readReady(l *pollLoop) bool {
	for {
		n, err := pl.conn.ReadReady(l.in)
		switch {
		case isClosed(err):
			return false
		case err != nil:
			continue // a passing error (an ICMP refusal): read on
		case n == 0:
			return true
		}
		for _, m := range l.in[:n] {
			pl.handle(l, m.Buf, m.Addr)
		}
	}
}

// sendDue counts as missed the polls whose time is up, and sends every
// poll and canary due within the window that starts now.
func (pl *poller) sendDue(l *pollLoop, now int64) {
	servers := pl.members.servers()
	every := pollEvery(pl.cfg, len(servers))
	// Polls due within the window go now, with the first: the later ones
	// early, once. Each server's next poll counts from when it was due, so
	// its interval stays its own, jittered, on average, and two proxies do
	// not fall into step.
	window := now + pollWindow(every, len(servers))
	l.next = now + int64(every)
	// A poll and a canary per server at most: room for all, so that
	// appending never moves what the messages point to.
	if need := 2 * len(servers) * codec.StatusQuerySize; cap(l.slab) < need {
		l.slab = make([]byte, 0, need)
	}
	l.out, l.slab = l.out[:0], l.slab[:0]
	l.outstanding, l.timeoutAt, l.urgentAt = 0, 0, 0
	l.lazyNext = l.next
	for _, s := range servers {
		if s.polled.every.Load() != int64(every) {
			s.polled.every.Store(int64(every))
		}
		pl.due(l, s, now, window)
		ps := &s.polled.sched
		if ps.sentAt == 0 {
			l.next = min(l.next, ps.next)
			l.lazyNext = min(l.lazyNext, ps.next)
			continue
		}
		// Awaiting an answer: its timeout is what is due. It is answered
		// by then, or missed and asked again.
		l.outstanding++
		t := ps.sentAt + int64(pl.cfg.PollTimeout)
		l.timeoutAt = earliest(l.timeoutAt, t)
		if s.state.misses.Load() > 0 {
			l.urgentAt = earliest(l.urgentAt, t)
		}
		// While idle: its next poll, once the answer to this one is read
		// then, or if that time has passed unanswered, its timeout.
		if ps.next > now {
			l.lazyNext = min(l.lazyNext, ps.next)
		} else {
			l.lazyNext = min(l.lazyNext, t)
		}
	}
	for out := l.out; len(out) > 0; {
		n := min(len(out), batch)
		_, _ = pl.conn.WriteBatch(out[:n])
		out = out[n:]
	}
}

// earliest is the earlier of two nanotimes, where 0 means none.
func earliest(a, b int64) int64 {
	if a == 0 || b < a {
		return b
	}
	return a
}

// due counts s's poll as missed if its time is up, and appends to l.out
// the datagrams s is due by the window's end: a poll, and a canary if it
// is ejected and its time is up.
func (pl *poller) due(l *pollLoop, s *Server, now, window int64) {
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
		return
	}
	every := s.polled.every.Load()
	if ps.next == 0 {
		ps.next = now + l.rng.Int64N(every) // a random phase for a server new to the schedule
	}
	if window < ps.next || ps.sentAt != 0 {
		return
	}
	// A fresh unguessable ID per poll: a forged status reply would have to
	// guess it to put a lie about load in the report.
	ps.id, ps.sentAt = l.rng.Uint64()|1, now // never 0, which means "not awaiting"
	s.polled.pollID.Store(ps.id)
	// ±25% jitter around the interval, from when the poll was due, or
	// from a little before now if that is long past (a miss asked again
	// at once, a scheduler that woke late): at least half an interval on.
	ps.next = max(ps.next, now-every/4) + every*3/4 + l.rng.Int64N(every/2+1)
	l.slab, l.out = appendMsg(l.slab, l.out, s.status, func(b []byte) []byte { return codec.AppendStatusQuery(b, ps.id) })
	if canaryDue(s, now) {
		id := l.rng.Uint64() | 1
		req, _ := canary(id)
		s.polled.canaryID.Store(id)
		l.slab, l.out = appendMsg(l.slab, l.out, s.calc, func(b []byte) []byte { return codec.AppendRequest(b, id, req) })
	}
}

// pollWindow is how far ahead of the first poll due the polls that go
// with it may fall due: a whole interval, so that the polls coming due
// mostly go with a wake-up the poller has anyway, the one that reads the
// last answers, and few wake-ups are for sending alone (with half an
// interval, an idle proxy with three servers spent 0.58% of a core
// against 0.51%, the two side by side, 10 windows of 5 s), or the time in
// which windowPolls fall due, whichever is shorter. A poll sent early is
// counted from when it was due, so each server is still polled once an
// interval on average; its reply carries the figures of the server's last
// measurement, as any reply does.
func pollWindow(every time.Duration, n int) int64 {
	return int64(min(every, every*windowPolls/time.Duration(max(n, 1))))
}

// windowPolls is about how many polls one window sends: four sendmmsg
// calls. Each wake-up costs the idle proxy more than the polls it sends
// (on this VM, a context switch is about 50 µs, and a wake-up takes
// three or four), so fewer and fuller windows are cheaper: with one
// batch (64) a window, a thousand servers polled 10,000 times a second
// cost 10.96% of a core, with four, 7.51% (idlepair, 5 windows of 5 s,
// side by side; eight batches, 8.05% against four's 9.05%, a run whose
// figures all read higher). Not more: an idle poller leaves a window's
// answers queued in the socket until its next wake-up, and a host's
// default receive buffer (net.core.rmem_max, 208 KiB, which caps the
// 4 MiB the reader asks for, and which the kernel doubles) holds 512
// small datagrams: 256 answers and their canaries fit with room to spare.
const windowPolls = 4 * batch

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

// refreshDue says when the fleet's figures are next due, if anything has
// moved them: reports that came, or requests, which move reply times and
// in-flight counts. With neither, they wait, and an idle proxy does not
// wake for them.
func (pl *poller) refreshDue(l *pollLoop) (int64, bool) {
	if !l.reported && pl.counters.requests.Load() == l.requests {
		return 0, false
	}
	return l.refreshedAt + int64(fleetEvery), true
}

// refresh works out the load model's cost and backgrounds, then the
// fleet's figures from them.
func (pl *poller) refresh() {
	pl.load.recompute()
	pl.fleet.Store(newFleet(pl.members.servers(), nanotime()))
}

// canary is the calculation sent to an ejected server's calculator port.
// Its operands are the ID's low bits, so that only a server that really
// computed it answers it right.
func canary(id uint64) (codec.Request, codec.Number) {
	a, b := int64(id>>40), int64(id&0xffff)
	return codec.Request{Op: codec.OpAdd, A: codec.IntNumber(a), B: codec.IntNumber(b)}, codec.IntNumber(a + b)
}

func (pl *poller) handle(l *pollLoop, pkt []byte, from netip.AddrPort) {
	h, err := codec.ParseHeader(pkt)
	switch {
	case err != nil:
		pl.counters.drops.add(dropStatus)
	case h.Kind == codec.KindStatusReply:
		if pl.handleStatus(pkt, h.ID, from) != nil {
			l.reported = true
		}
	case h.Kind == codec.KindReply:
		pl.handleCanary(pkt, h.ID, from)
	default:
		pl.counters.drops.add(dropStatus)
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
	pl.counters.drops.add(dropStatus)
}

// handleStatus takes a status reply, and returns the server whose poll it
// answered, nil if none.
func (pl *poller) handleStatus(pkt []byte, id uint64, from netip.AddrPort) *Server {
	// Decode first: a reply that cannot be read is no answer, and the poll
	// it claims to answer counts as missed.
	st, err := codec.DecodeStatus(pkt[codec.HeaderSize:])
	if err != nil {
		if errors.Is(err, codec.ErrBadText) {
			pl.counters.drops.add(dropBadText) // a name that could forge a stats line or break a scrape
		} else {
			pl.counters.drops.add(dropStatus)
		}
		return nil
	}
	var s *Server
	for _, c := range pl.members.byStatus(from) {
		// Taking the ID answers the poll exactly once.
		if netlist.SameAddrPort(c.status, from) && c.polled.pollID.CompareAndSwap(id, 0) {
			s = c
			break
		}
	}
	if s == nil {
		pl.counters.drops.add(dropStatus)
		return nil
	}
	s.polled.sched.sentAt = 0
	r := &report{Status: st, at: nanotime()}
	prev := s.polled.report.Load()
	if !pl.members.verify(s, st, prev == nil) {
		return s
	}
	if !s.removed.Load() { // else the model forgets it at its next recompute
		pl.load.update(s, prev, r)
	}
	s.polled.report.Store(r)
	pl.members.reported(s, st.Draining, prev == nil)
	return s
}

// hedgeDelays is the poller's side: each server's histogram counts as it
// last read them.
type hedgeDelays map[*Server]*[replyBuckets]uint64

// update works out each server's hedge delay, the 95th percentile of its
// replies since the last update, when at least hedgeSamples came; a server
// with fewer keeps its delay, and its counts wait for more.
func (h hedgeDelays) update(servers []*Server) {
	for s := range h {
		if s.removed.Load() {
			delete(h, s)
		}
	}
	for _, s := range servers {
		prev := h[s]
		if prev == nil {
			prev = new([replyBuckets]uint64)
			h[s] = prev
		}
		var cur [replyBuckets]uint64
		var total uint64
		for i := range cur {
			cur[i] = s.traffic.replies[i].Load()
			total += cur[i] - prev[i]
		}
		if total < hedgeSamples {
			continue
		}
		var seen uint64
		for i := range cur {
			if seen += cur[i] - prev[i]; seen >= total*95/100 {
				s.polled.hedgeAfter.Store(int64(min(max(replyBucketTop(i), hedgeMin), hedgeMax)))
				break
			}
		}
		*prev = cur
	}
}
