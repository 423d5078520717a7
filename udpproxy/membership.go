package udpproxy

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/netlist"
)

// Membership: the servers the proxy routes to can change while it runs.
// Three sources feed the list: the Servers of the Config (-server), which
// stay for the proxy's life; servers that join (udpserver -join), which
// leave after MaxMisses missed polls; and DNS SRV records (-server-srv),
// which follow the DNS answer. The list is copy-on-write: a change takes
// p.members and stores a new slice, so the hot path reads it with one
// atomic load and never waits for a change.

// source says where a backend came from.
type source uint8

const (
	fromConfig source = iota
	fromJoin
	fromSRV
)

func (s source) String() string {
	switch s {
	case fromJoin:
		return "join"
	case fromSRV:
		return "srv"
	}
	return "config"
}

// findLocked returns the backend with both these addresses, or nil. The
// caller holds p.members.
func (p *Proxy) findLocked(calc, status netip.AddrPort) *Server {
	for _, b := range p.backends() {
		if b.calc == calc && b.status == status {
			return b
		}
	}
	return nil
}

// newLearned returns a backend learned while running. Unlike the
// configured ones, it takes no work until its status port has answered a
// poll: a join may be spoofed, and a DNS record may be wrong about the
// status port.
func newLearned(a ServerAddr, calc, status netip.AddrPort, poll time.Duration, fallback *atomic.Bool, src source) *Server {
	b := newBackendAt(a, calc, status, poll, fallback)
	b.source = src
	b.down.Store(true)
	return b
}

// addLocked puts b in the list and starts polling it if the proxy is
// serving; name, if known, is for the log. It reports false when the list
// is full. The caller holds p.members.
func (p *Proxy) addLocked(b *Server, name string) bool {
	old := p.backends()
	if len(old) >= p.cfg.MaxServers {
		return false
	}
	bs := append(slices.Clip(old), b)
	p.list.Store(&bs)
	if p.spawn != nil {
		p.spawn(b)
	}
	p.cfg.Logger.Info("udpproxy: server added", "name", name, "addr", b.addr.Calc, "status", b.addr.Status, "via", b.source.String())
	return true
}

// removeLocked takes b out of the list and stops its poller. Requests in
// flight to it still get its answers: the pending table holds the backend
// itself, not its place in the list. The caller holds p.members.
func (p *Proxy) removeLocked(b *Server, why string) {
	old := p.backends()
	i := slices.Index(old, b)
	if i < 0 {
		return
	}
	bs := slices.Delete(slices.Clone(old), i, i+1)
	p.list.Store(&bs)
	b.removed.Store(true)
	if b.stopPoll != nil {
		b.stopPoll()
	}
	if p.pl != nil {
		p.pl.forget(b)
	}
	p.noteDraining()
	p.cfg.Logger.Info("udpproxy: server removed", "server", b.name(), "addr", b.addr.Calc, "via", b.source.String(), "why", why)
}

// remove is removeLocked for callers that do not hold p.members.
func (p *Proxy) remove(b *Server, why string) {
	p.members.Lock()
	defer p.members.Unlock()
	p.removeLocked(b, why)
}

// maxUnverified bounds the joined servers whose status port has not yet
// answered a poll. Joins from inside JoinAllow can be spoofed; this keeps
// a flood of them from filling the list (MaxServers) and shutting out real
// servers, which are verified within a poll interval of joining.
const maxUnverified = 16

// handleJoin takes a server's announcement (codec.KindJoin) on the client
// port: a server in a JoinAllow network is added, or kept if known, and
// the join is acknowledged. The status address is where the join came
// from, the calculator address the same host and the announced port.
//
// A join never displaces a server already in the list. It adds one that
// takes no work until its status port answers a poll with the calculator
// port the join claimed (see verify); only then does it replace the joined
// servers that shared one of its addresses, a server that came back on
// other ports, say.
func (p *Proxy) handleJoin(rd *reader, i int, pkt []byte, from netip.AddrPort, id uint64) {
	if !p.joinAllowed(from.Addr()) {
		p.drops.add(dropJoinRefused)
		if p.refusedLog.allow(rd.now) {
			p.cfg.Logger.Warn("udpproxy: join refused: the source is outside -join-allow", "from", from.String())
		}
		return
	}
	j, err := codec.DecodeJoin(pkt[codec.HeaderSize:])
	if err != nil {
		p.drops.add(dropJoinRefused)
		return
	}
	status := from
	calc := netip.AddrPortFrom(from.Addr(), j.CalcPort)
	p.members.Lock()
	why := ""
	if p.findLocked(calc, status) == nil {
		unverified := 0
		for _, b := range p.backends() {
			if b.source == fromJoin && b.report.Load() == nil {
				unverified++
			}
		}
		nb := newLearned(ServerAddr{Calc: calc.String(), Status: status.String()}, calc, status, p.cfg.Poll, &p.allDraining, fromJoin)
		switch {
		case unverified >= maxUnverified:
			why = "too many joins not yet verified"
		case !p.addLocked(nb, j.Name):
			why = "the server list is full"
		}
	}
	p.members.Unlock()
	if why != "" {
		p.drops.add(dropJoinRefused)
		if p.fullLog.allow(rd.now) {
			p.cfg.Logger.Warn("udpproxy: join refused: "+why, "from", from.String(), "max_servers", p.cfg.MaxServers)
		}
		return
	}
	p.joins.Add(1)
	// The acknowledgement is a bare header, smaller than the join.
	rd.toClient(codec.AppendJoinAck(rd.slot(i), id), from)
}

// verify checks a joined server's status report against its join: the
// calculator port it reports must be the one the join claimed (a spoofed
// join names a wrong one; a server restarted on another port no longer
// has it). It reports whether b may stay; a server that fails is removed.
// At its first report a server that passes replaces the joined servers
// that share one of its addresses: they are what it was before.
func (p *Proxy) verify(b *Server, st codec.Status, first bool) bool {
	mismatch := st.CalcPort != 0 && st.CalcPort != b.calc.Port()
	if b.source != fromJoin || (!mismatch && !first) {
		return true
	}
	p.members.Lock()
	defer p.members.Unlock()
	if mismatch {
		p.removeLocked(b, "its status port reports calculator port "+strconv.Itoa(int(st.CalcPort)))
		return false
	}
	for _, o := range p.backends() {
		if o != b && o.source == fromJoin && (o.calc == b.calc || o.status == b.status) {
			p.removeLocked(o, "replaced by "+b.addr.String())
		}
	}
	return true
}

func (p *Proxy) joinAllowed(a netip.Addr) bool { return netlist.Contains(p.cfg.JoinAllow, a) }

// logLimit lets a warning that a flood could repeat be logged once a
// second at most.
type logLimit struct{ last atomic.Int64 }

func (l *logLimit) allow(now int64) bool {
	last := l.last.Load()
	now = max(now, 1) // 0 means "never logged"
	return (last == 0 || now-last >= int64(time.Second)) && l.last.CompareAndSwap(last, now)
}

// startMembership is called by Serve: it starts a poller for every backend
// in the list and for every one added later, until ctx ends.
func (p *Proxy) startMembership(ctx context.Context, pl *poller, spawn func(context.Context, *Server)) {
	p.members.Lock()
	defer p.members.Unlock()
	p.pl = pl
	p.spawn = func(b *Server) {
		bctx, cancel := context.WithCancel(ctx)
		b.stopPoll = cancel
		spawn(bctx, b)
	}
	for _, b := range p.backends() {
		p.spawn(b)
	}
}

// stopMembership ends additions of pollers: Serve calls it before it waits
// for its goroutines.
func (p *Proxy) stopMembership() {
	p.members.Lock()
	defer p.members.Unlock()
	p.spawn = nil
}
