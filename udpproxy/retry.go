package udpproxy

import (
	"context"
	"time"

	"github.com/discal/discal/codec"
)

// sweepSlack is how late a pass may come at most when the readers fall
// silent right after making one: the sweeper then makes it.
const sweepSlack = 6 * time.Millisecond

// sweepEvery is how often the pending table is swept: every tenth of a try
// timeout (1-50 ms), so a timeout fires at most 10% late, and every
// hedgeTick when hedging.
func sweepEvery(cfg *Config) time.Duration {
	every := min(max(cfg.TryTimeout/10, time.Millisecond), 50*time.Millisecond)
	if !cfg.NoHedge {
		every = min(every, hedgeTick)
	}
	return every
}

// sweepOnce makes a pass at w.now with w's scratch slots, which must be
// free (the worker has flushed), and sends what it produced. The caller
// holds sw.mu.
func (r *router) sweepOnce(w *worker) {
	sw := &r.sweeps
	n := 0
	var found []hedgeCandidate
	if !r.cfg.NoHedge {
		found = sw.cands[:0]
	}
	found = r.pending.sweep(w.now, r.expireInto(w, &n, false), found)
	r.sendHedges(w, &sw.budget, found, n)
	w.flush()
	sw.last.Store(w.now)
}

// maySweep makes a pass with a reader's worker, after its flush, if one is
// due and nobody else is making one.
func (r *router) maySweep(w *worker) {
	sw := &r.sweeps
	if w.now-sw.last.Load() < sw.every || !sw.mu.TryLock() {
		return
	}
	if w.now-sw.last.Load() >= sw.every {
		r.sweepOnce(w)
	}
	sw.mu.Unlock()
}

// sweep is the sweeper goroutine: it makes the passes the readers have not
// made, so that a pass comes on time while no datagram comes, and at most
// sweepSlack late when the readers fall silent right after one. While the
// table is empty it sleeps until a request comes into it (a second at
// most, for the rate limiter's housekeeping): an idle proxy does not wake
// for it hundreds of times a second.
func (r *router) sweep(ctx context.Context) {
	sw := &r.sweeps
	every := time.Duration(sw.every)
	idle := time.Second
	t := time.NewTimer(every)
	defer t.Stop()
	w := r.newWorker(nil)
	var lastForget time.Time
	for {
		select {
		case <-ctx.Done():
			r.expireAll(w)
			return
		case <-r.pending.filled:
			// A request came into the empty table: look again at the
			// pace of a busy one.
			r.pending.sleeping.Store(false)
			t.Reset(every)
			continue
		case <-t.C:
		}
		w.now = nanotime()
		sw.mu.Lock()
		next := sw.last.Load() + sw.every - w.now
		if next <= 0 {
			r.sweepOnce(w)
			next = sw.every
		} else {
			// A reader made the last pass: under load they make them
			// on time, and the sweeper looks again only a little after
			// the next is due, in case they fall silent.
			next += min(3*sw.every, int64(sweepSlack))
		}
		sw.mu.Unlock()
		if r.limiter != nil && time.Since(lastForget) > time.Second {
			r.limiter.forget(time.Now().Add(-idleSources))
			lastForget = time.Now()
		}
		// Sleeping is said before the table is looked at, so that a
		// request that comes in meanwhile either is seen here or wakes
		// the sweeper (pendingTable.filled).
		r.pending.sleeping.Store(true)
		if r.pending.Len() == 0 {
			t.Reset(idle)
		} else {
			r.pending.sleeping.Store(false)
			t.Reset(time.Duration(next))
		}
	}
}

// expireAll answers whatever is still pending as the proxy stops.
func (r *router) expireAll(w *worker) {
	r.sweeps.mu.Lock()
	defer r.sweeps.mu.Unlock()
	w.now = nanotime()
	n := 0
	r.pending.expired(1<<63-1, r.expireInto(w, &n, true))
	w.flush()
}

// expireInto returns what a walk over the table calls for each try it
// takes out: expire it with w's next scratch slot, *n, sending the batch
// when every slot is in use. final leaves the try no retry: the proxy
// stops.
func (r *router) expireInto(w *worker, n *int, final bool) func(id uint64, e *entry) {
	return func(id uint64, e *entry) {
		if final {
			e.tries = 255
		}
		r.expire(w, *n, id, e)
		if *n++; *n == batch {
			w.flush() // every scratch slot is in use: send before reusing them
			*n = 0
		}
	}
}

// expire handles one timed-out try, using scratch slot i: the request goes
// to another server if it has tries left, and otherwise the client is told
// "timeout". Either way the entry leaves the table exactly once, under its
// old ID.
func (r *router) expire(w *worker, i int, id uint64, e *entry) {
	old := e.server
	old.traffic.inFlight.Add(-1)
	old.traffic.timeouts.Add(1)
	if e.deadline <= w.now { // a real timeout, not the answer a stopping proxy gives all
		r.members.failed(old, w.now)
	}
	if e.done {
		// The other try of a hedged request that was answered: no answer
		// is owed, no retry due.
		r.pending.release(id, e)
		return
	}
	if h := e.hedge; h != nil {
		// The hedge went later and had less time: it is not counted
		// against its server's health, only as a try left unanswered.
		h.traffic.inFlight.Add(-1)
		h.traffic.timeouts.Add(1)
		e.hedge = nil
	}
	if int(e.tries) < r.cfg.Tries {
		if s := r.pick(w, old); s != nil {
			e.tries++
			r.retries.Add(1)
			s.traffic.retried.Add(1)
			// The old ID leaves with this try: a late answer to it is
			// dropped as unknown.
			r.send(w, append(w.slot(i), e.request()...), e, s, true)
			return
		}
	}
	r.timeouts.Add(1)
	o := e.origin
	r.pending.release(id, e)
	w.replyError(w.slot(i), o, codec.ErrTimeout)
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
