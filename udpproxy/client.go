package udpproxy

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/discal/discal/codec"
)

// clientLoop reads requests from clients until Shutdown, a batch at a time.
func (p *Proxy) clientLoop(w *worker) {
	for {
		n, err := w.r.ReadBatch(w.in)
		if err != nil {
			switch {
			case p.life.Stopping():
				return // Shutdown woke the reader
			case isClosed(err):
				p.life.Fail(fmt.Errorf("udpproxy: client socket: %w", err))
				return
			}
			continue
		}
		w.now = nanotime()
		if p.limiter != nil {
			w.wall = time.Now()
		}
		for i, m := range w.in[:n] {
			p.handleClient(w, i, m.Buf, m.Addr)
		}
		w.flush()
	}
}

// handleClient routes one client datagram, the i-th of its batch. It reads
// the header and nothing more of a binary request: the body goes to the
// server untouched.
func (p *Proxy) handleClient(w *worker, i int, pkt []byte, from netip.AddrPort) {
	if p.limiter != nil && !p.limiter.allow(from.Addr(), w.wall) {
		p.drops.add(dropRateLimited)
		return
	}
	if len(pkt) > 0 && pkt[0] != codec.Magic {
		switch codec.Gate(pkt) {
		case codec.NotText:
			p.drops.add(dropMagic)
		case codec.TextAnswer:
			p.drops.add(dropTextReply)
		case codec.TextTooShort:
			p.drops.add(dropShort)
		default:
			p.handleText(w, i, pkt, from)
		}
		return
	}
	h, err := codec.ParseHeader(pkt)
	switch {
	case err == codec.ErrTooLarge && h.Kind == codec.KindRequest:
		p.requests.Add(1)
		p.replyError(w, w.slot(i), from, h.ID, false, len(pkt), codec.ErrTooLarge)
		return
	case err == codec.ErrTooLarge:
		p.drops.add(dropTooLarge)
		return
	case err != nil:
		p.drops.add(dropShort)
		return
	case h.Kind.Base() == codec.KindJoin: // sealed or not: membership checks
		p.members.offerJoin(pkt, from, h.ID, w.now)
		return
	case h.Kind != codec.KindRequest:
		p.drops.add(dropKind)
		return
	}
	p.requests.Add(1)
	p.forward(w, i, pkt, from, h.ID, false, len(pkt))
}

// handleText answers the text form: an expression is turned into a binary
// request and forwarded like any other; "stats" is answered here.
func (p *Proxy) handleText(w *worker, i int, pkt []byte, from netip.AddrPort) {
	if len(pkt) > codec.MaxDatagram {
		p.replyError(w, w.slot(i), from, 0, true, len(pkt), codec.ErrTooLarge)
		return
	}
	if codec.TextCommand(pkt) == "stats" {
		// Stats run to a line per server, far larger than the request:
		// answering anyone would make the proxy an amplifier.
		if !from.Addr().Unmap().IsLoopback() {
			p.drops.add(dropForbidden)
			return
		}
		w.toClient(p.appendStatsText(nil), from)
		return
	}
	p.requests.Add(1)
	p.text.Add(1)
	req, err := codec.ParseExpr(string(pkt))
	if err != nil {
		p.replyError(w, w.slot(i), from, 0, true, len(pkt), codec.AsError(err))
		return
	}
	// The binary request goes in the datagram's own scratch slot, which
	// lives until the batch is sent.
	p.forward(w, i, codec.AppendRequest(w.slot(i), 0, req), from, 0, true, len(pkt))
}

// forward queues a request datagram for the server the policy picks, under
// a fresh internal ID, and remembers where its answer goes and how large
// the client's datagram was (reqLen), which bounds the answer. pkt must
// stay untouched until the batch is sent: it is the worker's own memory.
func (p *Proxy) forward(w *worker, i int, pkt []byte, client netip.AddrPort, clientID uint64, text bool, reqLen int) {
	b := p.pick(w, nil)
	if b == nil {
		p.noServer.Add(1)
		p.replyError(w, w.slot(i), client, clientID, text, reqLen, codec.ErrNoServer)
		return
	}
	e := &w.tmpl
	e.client, e.clientID, e.text, e.tries = client, clientID, text, 1
	e.clientLen = uint16(reqLen)
	e.setRequest(pkt)
	if !p.send(w, pkt, e, b, false) {
		p.busy.Add(1)
		p.replyError(w, w.slot(i), client, clientID, text, reqLen, codec.ErrBusy)
	}
}

// send enters a try of a request in the table, for backend b, and queues
// pkt, a copy of the request, with the try's ID. A first try is a copy of
// e, inserted if the table has room; a retry is e itself, which expiry
// took out of the table, reinserted. pkt must not be e's own request: once
// in the table, the entry may be taken and reused by the reply path at any
// moment.
func (p *Proxy) send(w *worker, pkt []byte, e *entry, b *Server, retry bool) bool {
	e.backend = b
	e.sentAt = w.now
	e.deadline = e.sentAt + int64(p.cfg.TryTimeout)
	b.inFlight.Add(1) // before the entry is visible, so a fast reply never takes it below zero
	var id uint64
	if retry {
		id = p.pending.reinsert(w.rng, e)
	} else {
		var ok bool
		if id, ok = p.pending.insert(w.rng, e); !ok {
			b.inFlight.Add(-1)
			return false
		}
	}
	b.sent.Add(1)
	codec.SetID(pkt, id)
	w.toServer(pkt, b)
	return true
}

// replyError queues an error of the proxy's own for a client, in the form
// the client used, encoded into buf, within the bound that its request of
// reqLen bytes sets (codec.AppendBounded).
func (p *Proxy) replyError(w *worker, buf []byte, client netip.AddrPort, clientID uint64, text bool, reqLen int, e *codec.Error) {
	w.toClient(codec.AppendBounded(buf[:0], reqLen, text, clientID, codec.Reply{Err: e}), client)
}
