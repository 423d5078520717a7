package udpproxy

import (
	"context"
	mrand "math/rand/v2"
	"time"

	"github.com/discal/discal/codec"
)

// sweep expires pending requests whose try has timed out, every tenth of a
// try timeout (1-50 ms), so a timeout fires at most 10% late.
func (p *Proxy) sweep(ctx context.Context) {
	every := min(max(p.cfg.TryTimeout/10, time.Millisecond), 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	rng := mrand.New(mrand.NewChaCha8(seed()))
	scratch := make([]byte, 0, codec.MaxDatagram)
	expire := func(id uint64, e *entry) { scratch = p.expire(rng, scratch, id, e) }
	for {
		select {
		case <-ctx.Done():
			// Whatever is still pending gets its answer now.
			p.pending.expired(1<<63-1, func(id uint64, e *entry) {
				e.tries = 255
				scratch = p.expire(rng, scratch, id, e)
			})
			return
		case <-t.C:
			p.pending.expired(nanotime(), expire)
		}
	}
}

// expire handles one timed-out try: the request goes to another server if
// it has tries left, and otherwise the client is told "timeout". Either way
// the entry leaves the table exactly once, under its old ID.
func (p *Proxy) expire(rng *mrand.Rand, scratch []byte, id uint64, e *entry) []byte {
	old := e.backend
	old.inFlight.Add(-1)
	old.timeouts.Add(1)
	if int(e.tries) < p.cfg.Tries {
		if b := p.cfg.Policy.Pick(p.backends(), old, rng); b != nil {
			e.tries++
			p.retries.Add(1)
			scratch = append(scratch[:0], e.request()...)
			// The old ID leaves with this try: a late answer to it is
			// dropped as unknown.
			p.send(rng, scratch, rng.Uint64(), e, b)
			return scratch
		}
	}
	p.timeouts.Add(1)
	client, clientID, text := e.client, e.clientID, e.text
	p.pending.release(id, e)
	p.replyError(scratch, client, clientID, text, codec.ErrTimeout)
	return scratch
}
