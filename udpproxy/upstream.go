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
	if m := p.metrics.Load(); m != nil {
		m.replies.Observe(float64(rd.now-rt.sentAt) / 1e9)
	}
	p.replies.Add(1)
	client, clientID := rt.client, rt.clientID
	if rt.text {
		out := rd.slot(i)
		if r, err := codec.DecodeReply(pkt[codec.HeaderSize:]); err != nil {
			out = codec.AppendTextError(out, codec.Errorf(codec.CodeMalformed, "malformed reply from server"))
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
	rd.toClient(pkt, client)
}
