package udpproxy

import (
	"errors"
	"net/netip"
	"time"

	"github.com/discal/discal/codec"
)

// upstreamLoop reads the servers' replies until the proxy closes, a batch
// at a time.
func (r *router) upstreamLoop(w *worker) {
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
			r.handleUpstream(w, i, m.Buf, m.Addr)
		}
		w.flush()
		r.maySweep(w)
	}
}

// handleUpstream routes one server reply, the i-th of its batch, back to its
// client. Only a reply from the server the request went to, with an ID the
// proxy is waiting for, gets through; everything else is dropped and
// counted.
func (r *router) handleUpstream(w *worker, i int, pkt []byte, from netip.AddrPort) {
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindReply {
		r.drops.add(dropUpstream)
		return
	}
	// The entry leaves the table before the client hears, so that a client
	// that has its answer never sees the request still pending.
	rt, ok, forged := r.pending.take(h.ID, from)
	if !ok {
		if forged {
			r.drops.add(dropForged)
		} else {
			r.drops.add(dropUnknown) // late, duplicate or never asked
		}
		return
	}
	s := rt.server
	s.traffic.inFlight.Add(-1)
	if rt.late {
		// A hedged request's other answer, after the first was relayed:
		// the server answers, and how late is worth knowing.
		s.traffic.observe(time.Duration(w.now-rt.sentAt), w.now)
		r.members.answered(s)
		r.drops.add(dropHedgeLost)
		return
	}
	if rt.hedge {
		r.hedgeWon.Add(1)
	}
	s.traffic.answered.Add(1)
	s.traffic.observe(time.Duration(w.now-rt.sentAt), w.now)
	r.members.answered(s)
	if h := r.replyTimes.Load(); h != nil {
		(*h).Observe(float64(w.now-rt.sentAt) / 1e9)
	}
	r.replies.Add(1)
	switch {
	case rt.text:
		pkt = codec.AppendBounded(w.slot(i), int(rt.size), true, 0, r.decodeReply(pkt))
	case !codec.Fits(len(pkt), int(rt.size)):
		// A server answered more than the bound allows (it is not one of
		// ours, or a newer one): the client gets the short form.
		pkt = codec.AppendBounded(w.slot(i), int(rt.size), false, rt.id, r.decodeReply(pkt))
	default:
		codec.SetID(pkt, rt.id)
	}
	w.toClient(pkt, rt.addr)
}

// decodeReply reads a server's reply for a client that gets it encoded
// anew. A reply that cannot be passed on is counted and becomes "malformed
// request": its text broke codec's rules (a name or message that is not
// printable, too long), or it did not decode.
func (r *router) decodeReply(pkt []byte) codec.Reply {
	rep, err := codec.DecodeReply(pkt[codec.HeaderSize:])
	switch {
	case errors.Is(err, codec.ErrBadText):
		r.drops.add(dropBadText)
	case err != nil:
		r.drops.add(dropUpstream)
	default:
		return rep
	}
	return codec.Reply{Err: codec.ErrMalformed}
}
