package udpproxy

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/discal/discal/codec"
)

// clientLoop reads requests from clients until Shutdown, a batch at a time.
func (r *router) clientLoop(w *worker) {
	for {
		n, err := w.r.ReadBatch(w.in)
		if err != nil {
			switch {
			case r.life.Stopping():
				return // Shutdown woke the reader
			case isClosed(err):
				r.life.Fail(fmt.Errorf("udpproxy: client socket: %w", err))
				return
			}
			continue
		}
		w.now = nanotime()
		if r.limiter != nil {
			w.wall = time.Now()
		}
		for i, m := range w.in[:n] {
			r.handleClient(w, i, m.Buf, m.Addr)
		}
		w.flush()
		r.maySweep(w)
	}
}

// handleClient routes one client datagram, the i-th of its batch. It reads
// the header and nothing more of a binary request: the body goes to the
// server untouched.
func (r *router) handleClient(w *worker, i int, pkt []byte, from netip.AddrPort) {
	if r.limiter != nil && !r.limiter.allow(from.Addr(), w.wall) {
		r.drops.add(dropRateLimited)
		if r.limiter.log.AllowAt(w.now) {
			r.cfg.Logger.Warn("udpproxy: request dropped: its source is over -rate-limit", "from", from.String(),
				"rate_limit", r.cfg.RateLimit, "rate_burst", r.cfg.RateBurst)
		}
		return
	}
	if len(pkt) > 0 && pkt[0] != codec.Magic {
		switch codec.Gate(pkt) {
		case codec.NotText:
			r.drops.add(dropMagic)
		case codec.TextAnswer:
			r.drops.add(dropTextReply)
		case codec.TextTooShort:
			r.drops.add(dropShort)
		default:
			r.handleText(w, i, pkt, from)
		}
		return
	}
	h, err := codec.ParseHeader(pkt)
	o := origin{addr: from, id: h.ID, size: uint16(min(len(pkt), 0xffff))}
	switch {
	case err == codec.ErrTooLarge && h.Kind == codec.KindRequest:
		r.requests.Add(1)
		w.replyError(w.slot(i), o, codec.ErrTooLarge)
		return
	case err == codec.ErrTooLarge:
		r.drops.add(dropTooLarge)
		return
	case err != nil:
		r.drops.add(dropShort)
		return
	case h.Kind.Base() == codec.KindJoin: // sealed or not: membership checks
		r.members.offerJoin(pkt, from, h.ID, w.now)
		return
	case h.Kind != codec.KindRequest:
		r.drops.add(dropKind)
		return
	}
	r.requests.Add(1)
	r.forward(w, i, pkt, o)
}

// handleText answers the text form: an expression is turned into a binary
// request and forwarded like any other; "stats" is answered here.
func (r *router) handleText(w *worker, i int, pkt []byte, from netip.AddrPort) {
	o := origin{addr: from, text: true, size: uint16(min(len(pkt), 0xffff))}
	if len(pkt) > codec.MaxDatagram {
		w.replyError(w.slot(i), o, codec.ErrTooLarge)
		return
	}
	if codec.TextCommand(pkt) == "stats" {
		// Stats run to a line per server, far larger than the request:
		// answering anyone would make the proxy an amplifier.
		if !from.Addr().Unmap().IsLoopback() {
			r.drops.add(dropForbidden)
			return
		}
		w.toClient(r.appendStatsText(nil), from)
		return
	}
	r.requests.Add(1)
	r.text.Add(1)
	req, err := codec.ParseExpr(string(pkt))
	if err != nil {
		w.replyError(w.slot(i), o, codec.AsError(err))
		return
	}
	// The binary request goes in the datagram's own scratch slot, which
	// lives until the batch is sent.
	r.forward(w, i, codec.AppendRequest(w.slot(i), 0, req), o)
}

// forward queues a request datagram for the server the policy picks, under
// a fresh internal ID, and remembers its origin, where its answer goes.
// pkt must stay untouched until the batch is sent: it is the worker's own
// memory.
func (r *router) forward(w *worker, i int, pkt []byte, o origin) {
	s := r.pick(w, nil)
	if s == nil {
		r.noServer.Add(1)
		w.replyError(w.slot(i), o, codec.ErrNoServer)
		return
	}
	e := &w.tmpl
	e.origin, e.tries = o, 1
	e.setRequest(pkt)
	if !r.send(w, pkt, e, s, false) {
		r.busy.Add(1)
		w.replyError(w.slot(i), o, codec.ErrBusy)
	}
}
