package udpproxy

import (
	"net/netip"
	"time"

	"github.com/discal/discal/codec"
)

// upstreamLoop reads the servers' replies until the proxy closes, a batch
// at a time.
func (p *Proxy) upstreamLoop(rd *reader) {
	for {
		n, err := rd.r.ReadBatch(rd.in)
		if err != nil {
			if p.closed.Load() || isClosed(err) {
				return
			}
			continue
		}
		rd.now = nanotime()
		for i, m := range rd.in[:n] {
			p.handleUpstream(rd, i, m.Buf, m.Addr)
		}
		rd.flush()
	}
}

// handleUpstream routes one server reply, the i-th of its batch, back to its
// client. Only a reply from the server the request went to, with an ID the
// proxy is waiting for, gets through; everything else is dropped and
// counted.
func (p *Proxy) handleUpstream(rd *reader, i int, pkt []byte, from netip.AddrPort) {
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
	rt.backend.observe(time.Duration(rd.now-rt.sentAt), rd.now)
	p.health.answered(rt.backend)
	if m := p.metrics.Load(); m != nil {
		m.replies.Observe(float64(rd.now-rt.sentAt) / 1e9)
	}
	p.replies.Add(1)
	client, clientID := rt.client, rt.clientID
	if rt.text {
		out := rd.slot(i)
		if r, err := codec.DecodeReply(pkt[codec.HeaderSize:]); err != nil {
			out = codec.AppendTextError(out, codec.ErrMalformed)
		} else {
			out = codec.AppendTextReply(out, r)
			if r.Err != nil && len(out) > codec.MaxAmplification*int(rt.clientLen) {
				out = codec.AppendTextError(out[:0], r.Err.Short())
			}
		}
		rd.toClient(out, client)
		return
	}
	codec.SetID(pkt, clientID)
	if len(pkt) > codec.MaxAmplification*int(rt.clientLen) {
		// A server answered more than the bound allows (it is not one of
		// ours, or a newer one): the client gets the short form.
		pkt = shrinkReply(rd.slot(i), pkt, clientID)
	}
	rd.toClient(pkt, client)
}

// shrinkReply re-encodes a reply without its detail and server name, into
// buf: a result stays a result, an error becomes its code's short form.
func shrinkReply(buf, pkt []byte, clientID uint64) []byte {
	r, err := codec.DecodeReply(pkt[codec.HeaderSize:])
	switch {
	case err != nil:
		return codec.AppendReply(buf[:0], clientID, codec.Reply{Err: codec.ErrMalformed})
	case r.Err != nil:
		return codec.AppendReply(buf[:0], clientID, codec.Reply{Err: r.Err.Short()})
	}
	return codec.AppendReply(buf[:0], clientID, codec.Reply{Result: r.Result})
}
