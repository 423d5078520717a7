package udpproxy

import (
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/discal/discal/internal/netlist"
)

// inlineReq is how much of a request an entry holds without allocating:
// discal's own clients send 40-byte requests. Longer ones (other clients
// may pad their msgpack) get a buffer of their own.
const inlineReq = 64

// origin is where a request came from and how it wants its answer: the
// facts that travel with it from the client reader to its reply, a retry,
// or an error of the proxy's own.
type origin struct {
	addr netip.AddrPort // the client
	id   uint64         // the client's request ID; 0 for text, which has none
	text bool           // the client spoke the text form and wants a line back
	size uint16         // the size of the client's datagram, which bounds the answer's
}

// entry is one request waiting for its server's answer. It keeps the
// request datagram so that the sweeper can send it to another server.
type entry struct {
	origin   origin
	server   *Server // the server this try went to
	sentAt   int64   // monotonic nanoseconds, when this try was sent
	deadline int64   // monotonic nanoseconds, when this try times out
	tries    uint8   // servers tried so far, this one included

	// A hedge: a copy of this try sent to another server once it had
	// waited longer than its server's recent replies (hedge.go). Either
	// answer is the answer, and the deadline stays this try's.
	hedge   *Server
	hedgeID uint64 // the copy's ID, in this entry's shard
	hedgeAt int64  // monotonic nanoseconds, when the copy was sent
	// done says one of the two answers came and was relayed: the entry now
	// stands for the other try alone (server, sentAt, id), which is still
	// in flight at its server, until its late answer or its deadline.
	done bool

	n   uint16
	req [inlineReq]byte
	big []byte // the request, when longer than inlineReq

	// While the entry is in the table: its ID, and its neighbours in its
	// shard's expiry list.
	id         uint64
	prev, next *entry
}

func (e *entry) setRequest(pkt []byte) {
	e.n = uint16(len(pkt))
	if len(pkt) <= inlineReq {
		copy(e.req[:], pkt)
		e.big = nil
		return
	}
	e.big = append(e.big[:0], pkt...)
}

func (e *entry) request() []byte {
	if e.big != nil {
		return e.big
	}
	return e.req[:e.n]
}

// route is what the reply path needs of an entry, copied out so that the
// entry can be reused the moment it leaves the table.
type route struct {
	origin
	server *Server // the server that answered
	sentAt int64   // when its try went
	hedge  bool    // the hedge answered first
	late   bool    // the other try of a hedged request answered: count it, do not relay it
}

// pendingTable maps the proxy's internal request IDs to their entries. It
// is split into shards by ID, each with its own lock, so that readers on
// different cores rarely meet; IDs are random, so shards fill evenly. Each
// request costs two short critical sections: insert and take.
//
// Each shard also links its entries in the order they were put, a list
// threaded through the entries themselves. Every try gets the same timeout,
// so the list is in deadline order (to within the moments between
// computing a deadline and inserting it) and the sweeper finds what expired
// by looking at its head alone. An entry leaves the list when it leaves the
// map, so the table's memory is bounded by the entries waiting, and so by
// the limit, whatever the timeout and the rate: a queue of (deadline, ID)
// records kept until each deadline grew with rate x timeout instead.
type pendingTable struct {
	shards [pendingShards]shard
	size   atomic.Int64
	limit  int64
	// filled has a token when a request came into an empty table while
	// the sweeper sleeps (sleeping): it sleeps while the table is empty,
	// and wakes for it. Under load the table empties and fills again
	// thousands of times a second; only a sleeping sweeper is woken.
	filled   chan struct{}
	sleeping atomic.Bool
}

const pendingShards = 64

type shard struct {
	mu         sync.Mutex
	m          map[uint64]*entry
	head, tail *entry   // the expiry list, oldest first
	free       []*entry // entries to reuse, so the hot path does not allocate
	_          [64]byte // keep neighbouring shards' locks off one cache line
}

// push links e, just put in the map under id, at the list's tail. Called
// with s.mu held.
func (s *shard) push(id uint64, e *entry) {
	e.id, e.prev, e.next = id, s.tail, nil
	if s.tail != nil {
		s.tail.next = e
	} else {
		s.head = e
	}
	s.tail = e
}

// remove takes e out of the map, under its hedge's ID too, and out of the
// list. Called with s.mu held.
func (s *shard) remove(e *entry) {
	s.unkey(e.id, e)
	if e.hedge != nil {
		s.unkey(e.hedgeID, e)
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// unkey deletes id from the map if it is e's. Called with s.mu held.
func (s *shard) unkey(id uint64, e *entry) {
	if s.m[id] == e {
		delete(s.m, id)
	}
}

func newPendingTable(limit int) *pendingTable {
	t := &pendingTable{limit: int64(limit), filled: make(chan struct{}, 1)}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]*entry)
	}
	return t
}

func (t *pendingTable) shard(id uint64) *shard { return &t.shards[id%pendingShards] }

// Len returns how many requests are waiting.
func (t *pendingTable) Len() int { return int(t.size.Load()) }

// insert stores a new request, a copy of *tmpl, under a fresh random ID
// from r, and returns the ID. It reports false when the table is full.
func (t *pendingTable) insert(r *mrand.Rand, tmpl *entry) (uint64, bool) {
	n := t.size.Add(1)
	if n > t.limit {
		t.size.Add(-1)
		return 0, false
	}
	if n == 1 && t.sleeping.Load() {
		select {
		case t.filled <- struct{}{}:
		default:
		}
	}
	for {
		id := r.Uint64()
		s := t.shard(id)
		s.mu.Lock()
		if _, taken := s.m[id]; taken {
			s.mu.Unlock()
			continue // one in 2^64 per entry: draw again
		}
		var e *entry
		if n := len(s.free); n > 0 {
			e, s.free = s.free[n-1], s.free[:n-1]
		} else {
			e = new(entry)
		}
		big := e.big
		*e = *tmpl
		if tmpl.big != nil {
			e.big = append(big[:0], tmpl.big...)
		}
		s.m[id] = e
		s.push(id, e)
		s.mu.Unlock()
		return id, true
	}
}

// reinsert puts an entry that left the table (by expiring) back under a
// fresh ID, for its next try.
func (t *pendingTable) reinsert(r *mrand.Rand, e *entry) uint64 {
	for {
		id := r.Uint64()
		s := t.shard(id)
		s.mu.Lock()
		if _, taken := s.m[id]; !taken {
			s.m[id] = e
			s.push(id, e)
			s.mu.Unlock()
			return id
		}
		s.mu.Unlock()
	}
}

// take removes the entry for id if the reply came from the server the
// request (or its hedge: id is then the hedge's) was sent to, and returns
// its route. A reply from any other address leaves the entry where it is:
// forged is true, and the real answer can still arrive. Addresses compare
// as the kernel sees them: a server named with a zone answers from its
// address on that interface.
//
// The first of a hedged request's two answers is relayed; the entry stays,
// for the other try, which is still in flight at its server (a stalled
// server's count must not fall while the requests it holds wait), until
// that try's late answer takes it (rt.late) or its deadline expires it.
func (t *pendingTable) take(id uint64, from netip.AddrPort) (rt route, ok, forged bool) {
	s := t.shard(id)
	s.mu.Lock()
	e, found := s.m[id]
	if !found {
		s.mu.Unlock()
		return route{}, false, false
	}
	rt = route{origin: e.origin, server: e.server, sentAt: e.sentAt, late: e.done}
	if e.hedge != nil && id == e.hedgeID {
		rt.server, rt.sentAt, rt.hedge = e.hedge, e.hedgeAt, true
	}
	// The plain comparison first: it is the answer for every reply but a
	// link-local server's, and costs no call.
	if rt.server.calc != from && !netlist.SameAddrPort(rt.server.calc, from) {
		s.mu.Unlock()
		return route{}, false, true
	}
	if e.hedge != nil {
		s.answerHedged(e, id)
		s.mu.Unlock()
		return rt, true, false
	}
	s.remove(e)
	s.recycle(e)
	s.mu.Unlock()
	t.size.Add(-1)
	return rt, true, false
}

// answerHedged keeps e, whose try under id has answered, for its other
// try alone. Called with s.mu held.
func (s *shard) answerHedged(e *entry, id uint64) {
	s.unkey(id, e)
	if id == e.id { // the first try won: the hedge is what is left
		e.server, e.sentAt, e.id = e.hedge, e.hedgeAt, e.hedgeID
	}
	e.hedge, e.done = nil, true
}

// recycle keeps an entry for reuse. Called with s.mu held.
func (s *shard) recycle(e *entry) {
	e.server, e.hedge, e.done = nil, nil, false // let a removed server be collected
	if cap(e.big) > 4096 {
		e.big = nil
	}
	if len(s.free) < 1024 {
		s.free = append(s.free, e)
	}
}

// release returns an entry that left the table by expiring and will not
// be retried.
func (t *pendingTable) release(id uint64, e *entry) {
	s := t.shard(id)
	s.mu.Lock()
	s.recycle(e)
	s.mu.Unlock()
	t.size.Add(-1)
}

// expired removes every entry whose deadline is before now and passes it
// to fn with its ID, outside the shard's lock. fn must reinsert or release
// it.
func (t *pendingTable) expired(now int64, fn func(id uint64, e *entry)) {
	t.sweep(now, fn, nil)
}

// sweep is expired, and appends to hedge, up to its capacity, the tries
// not yet hedged that have waited past their server's hedge delay
// (hedge.go): one lock of each shard for both. Each shard's list is in the
// order tries were sent, so the walk for hedges stops at the first try
// younger than hedgeMin.
func (t *pendingTable) sweep(now int64, fn func(id uint64, e *entry), hedge []hedgeCandidate) []hedgeCandidate {
	var gone *entry // this shard's expired entries, linked through next
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		var last *entry
		for s.head != nil && s.head.deadline <= now {
			e := s.head
			s.remove(e)
			if last == nil {
				gone = e
			} else {
				last.next = e
			}
			last = e
		}
		for e := s.head; e != nil && now-e.sentAt >= int64(hedgeMin) && len(hedge) < cap(hedge); e = e.next {
			if e.hedge == nil && !e.done && now-e.sentAt >= e.server.hedgeAfter() {
				hedge = append(hedge, hedgeCandidate{id: e.id, server: e.server})
			}
		}
		s.mu.Unlock()
		// fn may reinsert e, which relinks it: read next first.
		for e := gone; e != nil; {
			next := e.next
			e.next = nil
			fn(e.id, e)
			e = next
		}
		gone = nil
	}
	return hedge
}

// hedgeCandidate is a try that a sweep found past its hedge delay.
type hedgeCandidate struct {
	id     uint64
	server *Server
}

// hedge makes the try under id hedged, to server to, under a new ID in the
// same shard, and writes a copy of the request into buf. It reports false
// when the try has been answered, has expired or is hedged already.
func (t *pendingTable) hedge(r *mrand.Rand, id uint64, to *Server, now int64, buf []byte) (uint64, []byte, bool) {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[id]
	if e == nil || e.id != id || e.hedge != nil || e.done {
		return 0, buf, false
	}
	hid := r.Uint64()&^(pendingShards-1) | id%pendingShards // unguessable in all but its shard's bits
	for _, taken := s.m[hid]; taken || hid == id; _, taken = s.m[hid] {
		hid = r.Uint64()&^(pendingShards-1) | id%pendingShards
	}
	s.m[hid] = e
	e.hedge, e.hedgeID, e.hedgeAt = to, hid, now
	return hid, append(buf[:0], e.request()...), true
}
