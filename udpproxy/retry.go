package udpproxy

import (
	"context"
	"time"

	"github.com/discal/discal/codec"
)

// sweep expires pending requests whose try has timed out, every tenth of a
// try timeout (1-50 ms), so a timeout fires at most 10% late, and hedges
// the tries that have waited too long (hedge.go), every hedgeTick. While
// the table is empty it sleeps until a request comes into it (a second at
// most, for the rate limiter's housekeeping): an idle proxy does not wake
// for it hundreds of times a second.
func (r *router) sweep(ctx context.Context) {
	every := min(max(r.cfg.TryTimeout/10, time.Millisecond), 50*time.Millisecond)
	if !r.cfg.NoHedge {
		every = min(every, hedgeTick)
	}
	idle := time.Second
	t := time.NewTimer(every)
	defer t.Stop()
	w := r.newWorker(nil)
	budget := &hedgeBudget{per: r.cfg.HedgeBudget / 100, tokens: hedgeBurst} // counts requests from the first
	cands := make([]hedgeCandidate, 0, batch)
	var lastForget time.Time
	n := 0
	expire := func(id uint64, e *entry) {
		r.expire(w, n, id, e)
		if n++; n == batch {
			w.flush() // every scratch slot is in use: send before reusing them
			n = 0
		}
	}
	for {
		select {
		case <-ctx.Done():
			// Whatever is still pending gets its answer now.
			w.now = nanotime()
			r.pending.expired(1<<63-1, func(id uint64, e *entry) {
				e.tries = 255
				expire(id, e)
			})
			w.flush()
			return
		case <-r.pending.filled:
			// A request came into the empty table: look again at the
			// pace of a busy one.
			r.pending.sleeping.Store(false)
			t.Reset(every)
			continue
		case <-t.C:
			w.now = nanotime()
			var found []hedgeCandidate
			if !r.cfg.NoHedge {
				found = cands[:0]
			}
			found = r.pending.sweep(w.now, expire, found)
			n = r.sendHedges(w, budget, found, n)
			if r.limiter != nil && time.Since(lastForget) > time.Second {
				r.limiter.forget(time.Now().Add(-idleSources))
				lastForget = time.Now()
			}
			w.flush()
			n = 0
			// Sleeping is said before the table is looked at, so that a
			// request that comes in meanwhile either is seen here or
			// wakes the sweeper (pendingTable.filled).
			r.pending.sleeping.Store(true)
			if r.pending.Len() == 0 {
				t.Reset(idle)
			} else {
				r.pending.sleeping.Store(false)
				t.Reset(every)
			}
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
