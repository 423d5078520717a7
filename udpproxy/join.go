package udpproxy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/netlist"
	"github.com/discal/discal/internal/udpbatch"
)

// Joins: servers that announce themselves (udpserver -join) to the proxy's
// client port, from a network JoinAllow names. The client readers hand each
// join to the membership's own goroutine, which checks its seal, adds the
// server and acknowledges it; the server takes work once its status port
// has answered a poll naming the calculator port the join claimed.

// maxUnverified bounds the joined servers whose status port has not yet
// answered a poll. Joins from inside JoinAllow can be spoofed; this keeps
// a flood of them from filling the list (MaxServers) and shutting out real
// servers, which are verified within a poll interval of joining.
const maxUnverified = 16

// joinQueue is how many joins may wait for membership's goroutine. Servers
// join once a second each, so a full queue means a flood: what does not
// fit is dropped and counted, and a real server joins again a second later.
const joinQueue = 256

// joinOffer is a join as read on the client socket.
type joinOffer struct {
	from netip.AddrPort
	id   uint64
	pkt  []byte // the whole datagram: a seal covers the header too
}

// offerJoin hands a join (codec.KindJoin) read on the client port to
// membership's goroutine, without waiting: the reader that found it has
// requests to route.
func (m *membership) offerJoin(pkt []byte, from netip.AddrPort, id uint64, now int64) {
	if !netlist.Contains(m.cfg.JoinAllow, from.Addr()) {
		m.counters.drops.add(dropJoinRefused)
		if m.refusedLog.AllowAt(now) {
			m.cfg.Logger.Warn("udpproxy: join refused: the source is outside -join-allow", "from", from.String(),
				"join_allow", netlist.String(m.cfg.JoinAllow))
		}
		return
	}
	select {
	case m.joins <- joinOffer{from: from, id: id, pkt: slices.Clone(pkt)}:
	default:
		m.counters.drops.add(dropJoinRefused)
	}
}

// runJoins takes the joins offered until ctx ends.
func (m *membership) runJoins(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-m.joins:
			m.join(j)
		}
	}
}

// join takes one server's announcement: a server is added, or kept if
// known, and the join is acknowledged. The status address is where the
// join came from, the calculator address the same host and the announced
// port.
//
// A join never displaces a server already in the list. It adds one that
// takes no work until its status port answers a poll with the calculator
// port the join claimed (see verify); only then does it replace the joined
// servers that shared one of its addresses, a server that came back on
// other ports, say.
func (m *membership) join(o joinOffer) {
	// With a key, a join from another host must be sealed: its source
	// address proves nothing. Checked here, off the client readers' path.
	body, err := m.auth.Accept(o.pkt, o.from.Addr().Unmap().IsLoopback(), time.Now())
	if err != nil {
		m.counters.drops.add(dropUnauthenticated)
		if m.unsealedLog.AllowAt(nanotime()) {
			m.cfg.Logger.Warn("udpproxy: join refused: not sealed under -control-key (is it the servers' key?)", "from", o.from.String(), "err", err)
		}
		return
	}
	j, err := codec.DecodeJoin(body)
	switch {
	case errors.Is(err, codec.ErrBadText):
		m.counters.drops.add(dropBadText)
		return
	case err != nil:
		m.counters.drops.add(dropJoinRefused)
		return
	}
	status := o.from
	calc := netip.AddrPortFrom(o.from.Addr(), j.CalcPort)
	m.mu.Lock()
	added, dup, why := m.addJoinedLocked(calc, status)
	ack := m.ack
	m.mu.Unlock()
	switch {
	case dup != nil:
		m.counters.drops.add(dropJoinRefused)
		if m.dupLog.AllowAt(nanotime()) {
			m.cfg.Logger.Warn("udpproxy: join refused: its calculator address is listed already, with another status port",
				"from", o.from.String(), "calc", calc.String(), "listed_status", dup.addr.Status, "via", dup.source.String())
		}
		return
	case why != "":
		m.counters.drops.add(dropJoinRefused)
		if m.fullLog.AllowAt(nanotime()) {
			m.cfg.Logger.Warn("udpproxy: join refused: "+why, "from", o.from.String(), "max_servers", m.cfg.MaxServers)
		}
		return
	}
	if added != nil {
		m.logAdded(added, j.Name)
	}
	m.counters.joins.Add(1)
	if ack != nil {
		// The acknowledgement is a bare header, smaller than the join;
		// sealed, it is 50 bytes, within the bound of any join.
		b := codec.AppendJoinAck(nil, o.id)
		if m.auth != nil {
			b = m.auth.Seal(b, time.Now())
		}
		_ = udpbatch.WriteTo(ack, b, o.from)
	}
}

// addJoinedLocked adds the server a join names, unless it is listed
// already. A server listed at both addresses is the same one joining again
// (nothing to add). One listed at the calculator address alone is dup: one
// calculator address is one server, however it was named, and the first
// entry's status port is the one whose reports count. A join that names
// another server's calculator port from a status port of its own would
// otherwise make a second entry for it, whose idle report governs the
// work sent there. why says why a join that is neither was not added.
func (m *membership) addJoinedLocked(calc, status netip.AddrPort) (added, dup *Server, why string) {
	if m.find(calc, status) != nil {
		return nil, nil, ""
	}
	if dup = m.listedCalc(calc); dup != nil {
		return nil, dup, ""
	}
	unverified := 0
	for _, s := range m.servers() {
		if s.source == fromJoin && s.polled.report.Load() == nil {
			unverified++
		}
	}
	s := newLearned(ServerAddr{Calc: calc.String(), Status: status.String()}, calc, status, m.cfg.Poll, fromJoin)
	switch {
	case unverified >= maxUnverified:
		return nil, nil, "too many joins not yet verified"
	case !m.addLocked(s):
		return nil, nil, "the server list is full"
	}
	return s, nil, ""
}

// verify checks a joined server's status report against its join: the
// calculator port it reports must be the one the join claimed (a spoofed
// join names a wrong one; a server restarted on another port no longer
// has it). It reports whether s may stay; a server that fails is removed.
// At its first report a server that passes replaces the joined servers
// that share its status port: they are what it was before, on another
// calculator port. (None shares its calculator address: see
// addJoinedLocked.)
func (m *membership) verify(s *Server, st codec.Status, first bool) bool {
	mismatch := st.CalcPort != 0 && st.CalcPort != s.calc.Port()
	if s.source != fromJoin || (!mismatch && !first) {
		return true
	}
	if mismatch {
		m.remove(s, "its status port reports calculator port "+strconv.Itoa(int(st.CalcPort)))
		return false
	}
	m.mu.Lock()
	var gone []*Server
	for _, o := range m.servers() {
		if o != s && o.source == fromJoin && netlist.SameAddrPort(o.status, s.status) && m.removeLocked(o) {
			gone = append(gone, o)
		}
	}
	m.mu.Unlock()
	for _, o := range gone {
		m.logRemoved(o, "replaced by "+s.addr.String())
	}
	return true
}
