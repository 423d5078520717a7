package flood

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/udpbatch"
)

// Request IDs carry their slot in the low bits and the slot's generation
// above, so that a reply finds its slot at once and a late reply to an
// earlier request in the same slot is told apart.
const (
	slotBits = 16
	maxSlots = 1 << slotBits
	batch    = 64
)

type slot struct {
	busy     bool
	id       uint64
	gen      uint64
	pkt      [codec.RequestSize]byte
	want     codec.Number
	wantCode codec.Code
	start    int64 // when it was meant to go (open loop) or first went
	deadline int64 // when the current try times out
	wait     int64 // the current try's wait
	tries    int
}

// conn is one socket's share of the load. mu guards the slots and the
// counts; each goroutine that sends has its own outbox and Writer.
type conn struct {
	rs     *run
	sock   *net.UDPConn
	done   chan struct{}
	quota  int // requests this connection may start; -1 for no limit
	window int // slots

	mu          sync.Mutex
	slots       []slot
	free        []int // open loop: idle slots
	gen         opGen
	active      int
	finished    bool
	sent        uint64
	ok          uint64
	wrong       uint64
	errors      uint64
	timeouts    uint64
	retransmits uint64
	late        uint64
	overruns    uint64
	hist        *hdrhistogram.Histogram
	perServer   map[string]uint64
	timeline    []*timeSlice // answers per server and their latency per Config.Timeline slice

	lastAnswer int64
	next       int64 // open loop: the next request's intended moment
	interval   int64 // open loop: between this connection's requests
	// waits holds, for each length of wait (the first try's, twice it,
	// four times it), the tries waiting that long in the order they were
	// sent, which is the order they time out in: the ticker looks only at
	// their heads, not at every slot.
	waits [3]deadlines

	reader *udpbatch.Reader
	rOut   outbox // the reader's: next requests of the closed loop, retries of transient errors
	tOut   outbox // the ticker's: retransmissions and replacements for timed-out requests
	pOut   outbox // the pacer's: open-loop sends
}

// deadlines is a queue of tries in deadline order.
type deadlines struct {
	items []deadline
	head  int
}

type deadline struct {
	at   int64
	slot int
	id   uint64
}

func (q *deadlines) push(d deadline) { q.items = append(q.items, d) }

// popDue returns the oldest item if it is due at now.
func (q *deadlines) popDue(now int64) (deadline, bool) {
	if q.head == len(q.items) || q.items[q.head].at > now {
		return deadline{}, false
	}
	d := q.items[q.head]
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && 2*q.head > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	return d, true
}

// outbox collects datagrams to send once c.mu is released: locks guard
// memory, not I/O. Each datagram is copied in, under c.mu, so that a slot
// refilled meanwhile cannot change bytes that are on their way out; the
// outbox grows to whatever one hold of the lock queues (a whole window at
// the start of a closed loop), and flush sends it batch by batch.
type outbox struct {
	w    *udpbatch.Writer
	slab []byte // the queued datagrams, codec.RequestSize each
	msgs []udpbatch.Message
}

func newOutbox(sock *net.UDPConn, noGSO bool) outbox {
	return outbox{
		w:    udpbatch.NewWriter(sock, udpbatch.Options{Batch: batch, NoGSO: noGSO}),
		slab: make([]byte, 0, batch*codec.RequestSize),
		msgs: make([]udpbatch.Message, 0, batch),
	}
}

// add copies pkt in. Called under c.mu.
func (o *outbox) add(pkt []byte) {
	o.slab = append(o.slab, pkt[:codec.RequestSize]...)
}

// flush sends what was queued. Called without c.mu, by the one goroutine
// that owns this outbox.
func (o *outbox) flush() {
	for off := 0; off < len(o.slab); {
		o.msgs = o.msgs[:0]
		for len(o.msgs) < batch && off < len(o.slab) {
			o.msgs = append(o.msgs, udpbatch.Message{Buf: o.slab[off : off+codec.RequestSize]})
			off += codec.RequestSize
		}
		_, _ = o.w.WriteBatch(o.msgs)
	}
	o.slab = o.slab[:0]
}

func newConn(rs *run, i int, target string) (*conn, error) {
	addr, err := resolve(target)
	if err != nil {
		return nil, err
	}
	sock, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return nil, err
	}
	_ = sock.SetWriteBuffer(4 << 20)
	c := &conn{
		rs:        rs,
		sock:      sock,
		done:      make(chan struct{}),
		gen:       newOpGen(rs.cfg.Seed, uint64(i)),
		hist:      newHistogram(),
		perServer: map[string]uint64{},
		reader:    udpbatch.NewReader(sock, udpbatch.Options{Batch: batch, MaxSize: codec.MaxDatagram}),
		rOut:      newOutbox(sock, rs.cfg.NoGSO),
		tOut:      newOutbox(sock, rs.cfg.NoGSO),
		pOut:      newOutbox(sock, rs.cfg.NoGSO),
	}
	return c, nil
}

func (c *conn) initSlots() {
	c.slots = make([]slot, c.window)
	if c.rs.cfg.Rate > 0 {
		c.free = make([]int, 0, c.window)
		for i := c.window - 1; i >= 0; i-- {
			c.free = append(c.free, i)
		}
	}
}

// canStart reports whether another request may begin. Called under mu.
func (c *conn) canStart(now int64) bool {
	if c.quota >= 0 && int(c.sent+c.overruns) >= c.quota {
		return false
	}
	return c.rs.stopAt == 0 || now < c.rs.stopAt
}

// begin fills slot i with a new request meant to go at start and queues it
// in o. Called under mu.
func (c *conn) begin(i int, start int64, o *outbox) {
	s := &c.slots[i]
	req, want, code := c.gen.next()
	s.gen++
	s.id = s.gen<<slotBits | uint64(i)
	codec.AppendRequest(s.pkt[:0], s.id, req)
	s.want, s.wantCode = want, code
	s.busy, s.tries = true, 1
	s.start = start
	s.wait = int64(c.rs.cfg.Timeout)
	s.deadline = max(start, c.rs.now()) + s.wait
	c.waits[0].push(deadline{s.deadline, i, s.id})
	c.active++
	c.sent++
	o.add(s.pkt[:])
}

// end frees slot i after its request finished at now and, in the closed
// loop, starts the next one in it. Called under mu.
func (c *conn) end(i int, now int64, o *outbox) {
	c.slots[i].busy = false
	c.active--
	if c.rs.cfg.Rate > 0 {
		c.free = append(c.free, i)
	} else if c.canStart(now) {
		c.begin(i, now, o)
	}
	c.checkDone(now)
}

// checkDone closes done once nothing is in flight and nothing more may
// start. In the open loop what may start depends on the next intended
// moment, not the clock: a pacer that wakes late still sends what was due
// before the end. Called under mu.
func (c *conn) checkDone(now int64) {
	if c.rs.cfg.Rate > 0 {
		now = c.next
	}
	if !c.finished && c.active == 0 && !c.canStart(now) {
		c.finished = true
		close(c.done)
	}
}

// fill starts the closed loop: one request in every slot. It has an
// outbox of its own, since the reader may already be using rOut when fill
// sends, after releasing mu.
func (c *conn) fill() {
	o := newOutbox(c.sock, c.rs.cfg.NoGSO)
	c.mu.Lock()
	now := c.rs.now()
	for i := range c.slots {
		if !c.canStart(now) {
			break
		}
		c.begin(i, now, &o)
	}
	c.checkDone(now)
	c.mu.Unlock()
	o.flush()
}

// read takes replies until the socket closes.
func (c *conn) read() {
	in := make([]udpbatch.Message, batch)
	for {
		n, err := c.reader.ReadBatch(in)
		if err != nil {
			if isClosed(err) {
				return
			}
			continue // e.g. ICMP port unreachable: the ticker retries
		}
		c.mu.Lock()
		now := c.rs.now()
		for _, m := range in[:n] {
			c.answer(m.Buf, now)
		}
		c.mu.Unlock()
		c.rOut.flush()
	}
}

// answer checks one reply against its slot's expected answer. Called under
// mu.
func (c *conn) answer(pkt []byte, now int64) {
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindReply {
		c.late++
		return
	}
	i := int(h.ID & (maxSlots - 1))
	if i >= len(c.slots) || !c.slots[i].busy || c.slots[i].id != h.ID {
		c.late++ // a duplicate, or an answer to a retransmission already answered
		return
	}
	s := &c.slots[i]
	r, err := codec.DecodeReply(pkt[codec.HeaderSize:])
	switch {
	case err != nil:
		c.wrong++
	case r.Err != nil && r.Err.Code.Transient():
		if s.tries <= c.rs.cfg.Retries {
			c.retry(i, now, &c.rOut)
			return
		}
		c.errors++
	case r.Err != nil:
		if r.Err.Code == s.wantCode {
			c.ok++
		} else {
			c.wrong++
		}
	case s.wantCode == 0 && r.Result.Equal(s.want):
		c.ok++
	default:
		c.wrong++
	}
	lat := max(1, (now-s.start)/int64(time.Microsecond))
	var ts *timeSlice
	if c.rs.cfg.Timeline > 0 {
		ts = c.slice(now)
		ts.lat[latBin(lat)]++
	}
	if r.Server != "" {
		c.perServer[r.Server]++
		if ts != nil {
			ts.perServer[r.Server]++
		}
	}
	_ = c.hist.RecordValue(lat)
	c.lastAnswer = max(c.lastAnswer, now)
	c.end(i, now, &c.rOut)
}

// retry sends slot i's request again, with the same ID, waiting longer.
func (c *conn) retry(i int, now int64, o *outbox) {
	s := &c.slots[i]
	s.tries++
	s.wait = min(2*s.wait, 4*int64(c.rs.cfg.Timeout))
	s.deadline = now + s.wait
	c.waits[min(s.tries-1, len(c.waits)-1)].push(deadline{s.deadline, i, s.id})
	c.retransmits++
	o.add(s.pkt[:])
}

// tick retransmits and times out requests until the run ends. A tenth of
// the timeout (at most 10 ms) between looks keeps timeouts close to time.
func (c *conn) tick(ctx context.Context) {
	every := min(c.rs.cfg.Timeout/10, 10*time.Millisecond)
	t := time.NewTicker(max(every, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		now := c.rs.now()
		for w := range c.waits {
			for {
				d, due := c.waits[w].popDue(now)
				if !due {
					break
				}
				s := &c.slots[d.slot]
				if !s.busy || s.id != d.id || s.deadline != d.at {
					continue // answered, or sent again since
				}
				if s.tries <= c.rs.cfg.Retries {
					c.retry(d.slot, now, &c.tOut)
					continue
				}
				c.timeouts++
				c.end(d.slot, now, &c.tOut)
			}
		}
		c.checkDone(now)
		c.mu.Unlock()
		c.tOut.flush()
	}
}

// paceDue sends every open-loop request of this connection whose intended
// moment has come: request k is meant to go at k·interval, and goes then
// or, if the pacer woke late, at once with the others due, its latency
// still counted from when it was meant to go. It returns the next intended
// moment, and false once this connection may start no more.
func (c *conn) paceDue() (next int64, more bool) {
	c.mu.Lock()
	now := c.rs.now()
	for c.next <= now && c.canStart(c.next) {
		if n := len(c.free); n > 0 {
			i := c.free[n-1]
			c.free = c.free[:n-1]
			c.begin(i, c.next, &c.pOut)
		} else {
			c.overruns++ // counts against the quota, or the run never ends
		}
		c.next += c.interval
	}
	more = c.canStart(c.next)
	if !more {
		c.checkDone(now)
	}
	next = c.next
	c.mu.Unlock()
	c.pOut.flush()
	return next, more
}

// pace runs the open loop for every connection from one goroutine, so that
// the pacer wakes once per round for all of them.
func pace(ctx context.Context, rs *run, conns []*conn) {
	sl := newSleeper()
	defer sl.close()
	for ctx.Err() == nil {
		wake, any := int64(1<<62), false
		for _, c := range conns {
			if next, more := c.paceDue(); more {
				wake, any = min(wake, next), true
			}
		}
		if !any {
			return
		}
		// Waking more often than every 100 us costs the load generator
		// more CPU than the accuracy is worth: requests due meanwhile go
		// together, each timed from its own intended moment.
		sl.sleep(min(max(time.Duration(wake-rs.now()), 100*time.Microsecond), 10*time.Millisecond))
	}
}
