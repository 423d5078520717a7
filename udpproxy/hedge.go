package udpproxy

import (
	"math/bits"
	mrand "math/rand/v2"
	"time"

	"github.com/discal/discal/codec"
)

// Hedged requests. Every operation is a pure function, so asking a second
// server is always safe. A try that has waited longer than its server's
// recent 95th percentile reply time (bounded to hedgeMin-hedgeMax) gets a
// copy sent to another server in rotation, and whichever answer comes
// first is relayed ("The Tail at Scale", Dean and Barroso; Envoy and gRPC
// hedge the same way). It is what least-load cannot do for the requests
// already sent to a server that stalls (a GC pause, a noisy neighbour, a
// SIGSTOP): the score stops choosing it after a few requests, but those
// few would wait out the stall. Hedges are capped by a budget, a share of
// the requests (Config.HedgeBudget), so that an overloaded fleet is not
// asked twice as much; Config.NoHedge turns them off.
//
// The pass that expires tries (retry.go) sends the hedges: every
// hedgeTick while requests are pending, made by a reader after its batch
// or else by the sweeper, it looks for tries past their server's hedge
// delay in the same walk over the pending table (pending.go). The
// copy is the same entry in the pending table under a second ID, in the
// same shard, so that the first answer takes it whole and the second finds
// nothing, as a late answer does. The request's deadline stays its first
// try's: a hedge is an early try, not a retry.

const (
	// hedgeMin and hedgeMax bound the hedge delay. Below a millisecond a
	// hedge would race the answers of a healthy server on a LAN, and the
	// sweeper's timer is no finer; past 50 ms a hedge comes too late to
	// help an interactive client, and a server that slow is for the score
	// and passive health to deal with.
	hedgeMin = time.Millisecond
	hedgeMax = 50 * time.Millisecond
	// hedgeTick is how often a pass looks for tries to hedge while
	// requests are pending: a hedge goes at most this late (sweepSlack
	// more when the readers fall silent right after a pass).
	hedgeTick = 2 * time.Millisecond
	// hedgeBurst is how many hedges the budget may save up.
	hedgeBurst = 20
	// hedgeEvery is how often the poller works out each server's hedge
	// delay from the replies since the last time, and hedgeSamples how
	// many replies that takes at least.
	hedgeEvery   = 200 * time.Millisecond
	hedgeSamples = 20
)

// The reply-time histogram each server's traffic keeps: 64 buckets, four a
// doubling, from 16 µs to about a second. Its counts only grow; the poller
// works on their differences.
const (
	replyBuckets      = 64
	replyBucketBaseUS = 16
)

// replyBucket is the bucket of a reply time: the data path calls it for
// every reply, so it is a few bit operations.
func replyBucket(rtt time.Duration) int {
	us := uint64(max(rtt, 0) / time.Microsecond)
	if us < replyBucketBaseUS {
		return 0
	}
	octave := bits.Len64(us) - 1 // 4 or more
	quarter := int(us>>(octave-2)) & 3
	return min((octave-4)*4+quarter, replyBuckets-1)
}

// replyBucketTop is the end of bucket i: each doubling from 16 µs is cut
// in four equal quarters.
func replyBucketTop(i int) time.Duration {
	octave, quarter := i/4, i%4
	return time.Duration(replyBucketBaseUS<<octave*(5+quarter)/4) * time.Microsecond
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

// hedgeAfter is how long a try at s may wait before it is hedged.
func (s *Server) hedgeAfter() int64 {
	if d := s.polled.hedgeAfter.Load(); d > 0 {
		return d
	}
	return int64(hedgeMax) // no replies seen yet: hedge late rather than early
}

// hedgeBudget is the sweeper's token bucket: budget tokens for every
// request read, a hedge spends one, at most hedgeBurst saved.
type hedgeBudget struct {
	per      float64 // tokens a request
	tokens   float64
	requests uint64 // requests counted so far
}

// allow reports whether a hedge may go, with requests read so far.
func (b *hedgeBudget) allow(requests uint64) bool {
	b.tokens = min(b.tokens+b.per*float64(requests-b.requests), hedgeBurst)
	b.requests = requests
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// hedgeCandidate is a try the sweeper found past its hedge delay.
type hedgeCandidate struct {
	id     uint64
	server *Server
}

// worthHedging reports whether a try at from may be hedged to to: only when
// to has at most half the requests in flight that from has. A server that
// stalls piles up the tries sent to it, so its tries go elsewhere; when
// every server is as busy as the others (a closed loop that fills the
// fleet), the slowest 5% are queueing, a copy would queue as long, and
// hedging them cost 8% of the proxy's throughput under the bench's GSO
// flood for nothing (bench -compare: 0.88x hop against 0.96x unhedged).
func worthHedging(from, to *Server) bool {
	return 2*to.traffic.inFlight.Load() <= from.traffic.inFlight.Load()
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

// sendHedges hedges the tries the sweep found past their delay, as far
// as the budget allows, with w's scratch slots from i on; it returns the
// next free slot.
func (r *router) sendHedges(w *worker, b *hedgeBudget, cands []hedgeCandidate, i int) int {
	for _, c := range cands {
		to := r.pick(w, c.server)
		if to == nil || to == c.server || !worthHedging(c.server, to) || !b.allow(r.requests.Load()) {
			continue
		}
		to.traffic.inFlight.Add(1) // before the copy can be answered
		id, pkt, ok := r.pending.hedge(w.rng, c.id, to, w.now, w.slot(i))
		if !ok {
			to.traffic.inFlight.Add(-1)
			b.tokens++ // not spent after all
			continue
		}
		to.traffic.sent.Add(1)
		r.hedges.Add(1)
		codec.SetID(pkt, id)
		w.toServer(pkt, to)
		if i++; i == batch {
			w.flush() // every scratch slot is in use: send before reusing them
			i = 0
		}
	}
	return i
}
