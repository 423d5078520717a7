package udpproxy

import (
	"errors"
	"net/netip"
	"time"

	"github.com/discal/discal/codec"
)

// upstreamLoop reads the servers' replies until the proxy closes, a batch
// at a time.
func (p *Proxy) upstreamLoop(w *worker) {
	for {
		n, err := w.r.ReadBatch(w.in)
		if err != nil {
			if isClosed(err) { // Serve closes it last
				return
			}
			continue
		}
		w.now = nanotime()
		for i, m := range w.in[:n] {
			p.handleUpstream(w, i, m.Buf, m.Addr)
		}
		w.flush()
	}
}

// handleUpstream routes one server reply, the i-th of its batch, back to its
// client. Only a reply from the server the request went to, with an ID the
// proxy is waiting for, gets through; everything else is dropped and
// counted.
func (p *Proxy) handleUpstream(w *worker, i int, pkt []byte, from netip.AddrPort) {
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindReply {
		p.drops.add(dropUpstream)
		return
	}
	// The entry leaves the table before the client hears, so that a client
	// that has its answer never sees the request still pending.
	rt, ok, forged := p.pending.take(h.ID, from)
	if !ok {
		if forged {
			p.drops.add(dropForged)
		} else {
			p.drops.add(dropUnknown) // late, duplicate or never asked
		}
		return
	}
	rt.backend.inFlight.Add(-1)
	rt.backend.answered.Add(1)
	rt.backend.observe(time.Duration(w.now-rt.sentAt), w.now)
	p.health.answered(rt.backend)
	if m := p.metrics.Load(); m != nil {
		m.replies.Observe(float64(w.now-rt.sentAt) / 1e9)
	}
	p.replies.Add(1)
	client, clientID := rt.client, rt.clientID
	if rt.text {
		r, err := codec.DecodeReply(pkt[codec.HeaderSize:])
		if err != nil {
			p.countBadReply(err)
			r = codec.Reply{Err: codec.ErrMalformed}
		}
		w.toClient(codec.AppendBounded(w.slot(i), int(rt.clientLen), true, 0, r), client)
		return
	}
	codec.SetID(pkt, clientID)
	if !codec.Fits(len(pkt), int(rt.clientLen)) {
		// A server answered more than the bound allows (it is not one of
		// ours, or a newer one): the client gets the short form.
		r, err := codec.DecodeReply(pkt[codec.HeaderSize:])
		if err != nil {
			p.countBadReply(err)
			r = codec.Reply{Err: codec.ErrMalformed}
		}
		pkt = codec.AppendBounded(w.slot(i), int(rt.clientLen), false, clientID, r)
	}
	w.toClient(pkt, client)
}

// countBadReply counts a server reply that could not be passed on as it
// came: its text broke codec's rules (a name or message that is not
// printable, too long), or it did not decode.
func (p *Proxy) countBadReply(err error) {
	if errors.Is(err, codec.ErrBadText) {
		p.drops.add(dropBadText)
		return
	}
	p.drops.add(dropUpstream)
}
