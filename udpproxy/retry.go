package udpproxy

import (
	"context"
	"time"

	"github.com/discal/discal/codec"
)

// sweep expires pending requests whose try has timed out, every tenth of a
// try timeout (1-50 ms), so a timeout fires at most 10% late. While the
// table is empty nothing can time out sooner than a whole try timeout from
// now, so the sweeper sleeps that long (a second at most, for the rate
// limiter's housekeeping): an idle proxy does not wake for it forty times
// a second.
func (r *router) sweep(ctx context.Context) {
	every := min(max(r.cfg.TryTimeout/10, time.Millisecond), 50*time.Millisecond)
	idle := min(r.cfg.TryTimeout, time.Second)
	t := time.NewTimer(every)
	defer t.Stop()
	w := r.newWorker(nil)
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
		case <-t.C:
			w.now = nanotime()
			r.pending.expired(w.now, expire)
			if r.limiter != nil && time.Since(lastForget) > time.Second {
				r.limiter.forget(time.Now().Add(-idleSources))
				lastForget = time.Now()
			}
			w.flush()
			n = 0
			if r.pending.Len() == 0 {
				t.Reset(idle)
			} else {
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
