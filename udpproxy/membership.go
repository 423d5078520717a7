package udpproxy

import (
	"context"
	"net/netip"
	"slices"
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

// findLocked returns the backend with this calculator or status address,
// or nil. The caller holds p.members.
func (p *Proxy) findLocked(calc, status netip.AddrPort) *backend {
	for _, b := range p.backends() {
		if b.calc == calc || b.status == status {
			return b
		}
	}
	return nil
}

// newLearned returns a backend learned while running. Unlike the
// configured ones, it takes no work until its status port has answered a
// poll: a join may be spoofed, and a DNS record may be wrong about the
// status port.
func newLearned(a ServerAddr, calc, status netip.AddrPort, poll time.Duration, fallback *atomic.Bool, src source) *backend {
	b := newBackendAt(a, calc, status, poll, fallback)
	b.source = src
	b.down.Store(true)
	return b
}

// addLocked puts b in rotation and starts polling it if the proxy is
// serving. It reports false when the list is full. The caller holds
// p.members.
func (p *Proxy) addLocked(b *backend) bool {
	old := p.backends()
	if len(old) >= p.cfg.MaxServers {
		return false
	}
	bs := append(slices.Clip(old), b)
	p.list.Store(&bs)
	if p.spawn != nil {
		p.spawn(b)
	}
	p.cfg.Logger.Info("udpproxy: server added", "addr", b.addr.Calc, "status", b.addr.Status, "via", b.source.String())
	return true
}

// removeLocked takes b out of the list and stops its poller. Requests in
// flight to it still get its answers: the pending table holds the backend
// itself, not its place in the list. The caller holds p.members.
func (p *Proxy) removeLocked(b *backend, why string) {
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
func (p *Proxy) remove(b *backend, why string) {
	p.members.Lock()
	defer p.members.Unlock()
	p.removeLocked(b, why)
}

// handleJoin takes a server's announcement (codec.KindJoin) on the client
// port: a server in a JoinAllow network is added, or kept if known, and
// the join is acknowledged. The status address is where the join came
// from, the calculator address the same host and the announced port.
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
	b := p.findLocked(calc, status)
	if b != nil && b.source == fromJoin && (b.calc != calc || b.status != status) {
		// The same server on a new port, or a new server on a port an
		// old one had: the latest announcement wins.
		p.removeLocked(b, "replaced by a join")
		b = nil
	}
	ok := true
	if b == nil {
		nb := newLearned(ServerAddr{Calc: calc.String(), Status: status.String()}, calc, status, p.cfg.Poll, &p.allDraining, fromJoin)
		if ok = p.addLocked(nb); !ok && p.fullLog.allow(rd.now) {
			p.cfg.Logger.Warn("udpproxy: join refused: the server list is full", "from", from.String(), "max_servers", p.cfg.MaxServers)
		}
	}
	p.members.Unlock()
	if !ok {
		p.drops.add(dropJoinRefused)
		return
	}
	p.joins.Add(1)
	// The acknowledgement is a bare header, smaller than the join.
	rd.toClient(codec.AppendJoinAck(rd.slot(i), id), from)
}

func (p *Proxy) joinAllowed(a netip.Addr) bool { return netlist.Contains(p.cfg.JoinAllow, a) }

// logLimit lets a warning that a flood could repeat be logged once a
// second at most.
type logLimit struct{ last atomic.Int64 }

func (l *logLimit) allow(now int64) bool {
	last := l.last.Load()
	return now-last >= int64(time.Second) && l.last.CompareAndSwap(last, now)
}

// startMembership is called by Serve: it starts a poller for every backend
// in the list and for every one added later, until ctx ends.
func (p *Proxy) startMembership(ctx context.Context, pl *poller, spawn func(context.Context, *backend)) {
	p.members.Lock()
	defer p.members.Unlock()
	p.pl = pl
	p.spawn = func(b *backend) {
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
