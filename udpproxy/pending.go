package udpproxy

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/discal/discal/codec"
)

// entry is one request waiting for its server's answer. It keeps the
// request datagram so that the sweeper can send it to another server.
type entry struct {
	client   netip.AddrPort
	clientID uint64
	backend  *backend
	sentAt   int64 // monotonic nanoseconds, when this try was sent
	deadline int64 // monotonic nanoseconds, when this try times out
	tries    uint8 // servers tried so far, this one included
	text     bool  // the client spoke the text form and wants a line back
	n        int
	req      [codec.MaxDatagram]byte
}

func (e *entry) request() []byte { return e.req[:e.n] }

// pendingTable maps the proxy's internal request IDs to their entries. It
// is split into shards by ID, each with its own lock, so that readers on
// different cores rarely meet; IDs are random, so shards fill evenly.
//
// Each shard also queues (deadline, ID) pairs in the order they were put.
// Every try gets the same timeout, so the queue is in deadline order and
// the sweeper finds what expired by looking at its head alone.
type pendingTable struct {
	shards [pendingShards]shard
	size   atomic.Int64
	limit  int64
}

const pendingShards = 64

type shard struct {
	mu    sync.Mutex
	m     map[uint64]*entry
	queue []expiry // queue[head:] are live items, oldest first
	head  int
	free  []*entry // entries to reuse, so the hot path does not allocate
	_     [64]byte // keep neighbouring shards' locks off one cache line
}

type expiry struct {
	deadline int64
	id       uint64
}

func newPendingTable(limit int) *pendingTable {
	t := &pendingTable{limit: int64(limit)}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]*entry)
	}
	return t
}

func (t *pendingTable) shard(id uint64) *shard { return &t.shards[id%pendingShards] }

// Len returns how many requests are waiting.
func (t *pendingTable) Len() int { return int(t.size.Load()) }

// get returns a blank entry for id's shard to fill, or nil when the table
// is full.
func (t *pendingTable) get(id uint64) *entry {
	if t.size.Add(1) > t.limit {
		t.size.Add(-1)
		return nil
	}
	s := t.shard(id)
	s.mu.Lock()
	var e *entry
	if n := len(s.free); n > 0 {
		e, s.free = s.free[n-1], s.free[:n-1]
	}
	s.mu.Unlock()
	if e == nil {
		e = new(entry)
	}
	return e
}

// put stores a filled entry under id. It reports false, leaving the entry
// with the caller, if id is already taken: the caller draws another ID.
func (t *pendingTable) put(id uint64, e *entry) bool {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.m[id]; taken {
		return false
	}
	s.m[id] = e
	s.queue = append(s.queue, expiry{e.deadline, id})
	return true
}

// release returns an entry that left the table (or never entered it) for
// reuse and gives back its slot.
func (t *pendingTable) release(id uint64, e *entry) {
	*e = entry{}
	s := t.shard(id)
	s.mu.Lock()
	if len(s.free) < 1024 {
		s.free = append(s.free, e)
	}
	s.mu.Unlock()
	t.size.Add(-1)
}

// take removes and returns the entry for id if it came from the backend
// the request was sent to. A reply from any other address leaves the entry
// where it is: forged is true, and the real answer can still arrive.
func (t *pendingTable) take(id uint64, from netip.AddrPort) (e *entry, forged bool) {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if e.backend.calc != from {
		return nil, true
	}
	delete(s.m, id)
	return e, false
}

// expired removes every entry whose deadline is before now and passes it
// to fn with its ID, outside the shard's lock.
func (t *pendingTable) expired(now int64, fn func(id uint64, e *entry)) {
	type item struct {
		id uint64
		e  *entry
	}
	var batch []item
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for s.head < len(s.queue) && s.queue[s.head].deadline <= now {
			x := s.queue[s.head]
			s.head++
			// The queue item may be for a request answered long ago: only
			// an entry still in the map with this very deadline expires.
			if e, ok := s.m[x.id]; ok && e.deadline == x.deadline {
				delete(s.m, x.id)
				batch = append(batch, item{x.id, e})
			}
		}
		// Reclaim the consumed front once it is most of the slice.
		if s.head > 1024 && s.head*2 > len(s.queue) {
			n := copy(s.queue, s.queue[s.head:])
			s.queue = s.queue[:n]
			s.head = 0
		} else if s.head == len(s.queue) {
			s.queue = s.queue[:0]
			s.head = 0
		}
		s.mu.Unlock()
		for _, it := range batch {
			fn(it.id, it.e)
		}
		batch = batch[:0]
	}
}
