package udpproxy

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/loglimit"
	"github.com/discal/discal/internal/netlist"
)

// Membership: the servers the proxy routes to, and which of them take work.
// Three sources feed the list: the Servers of the Config (-server), which
// stay for the proxy's life; servers that join (udpserver -join, join.go),
// which leave after MaxMisses missed polls; and DNS SRV records
// (-server-srv, discovery.go), which follow the DNS answer.
//
// The membership is the one writer of every server's state (server.go):
// the poller tells it what polls found (reported, missed), the data path
// what requests found (failed), and it applies the rules of health.go.
// Every change, to the list or to a server's state, happens under its one
// lock and ends by storing a new roster: the list, an index by address for
// the poller, and the rotation, the servers that take new work. So the hot
// path reads the rotation with one atomic load and never looks at a server
// that cannot take work, however many are listed.

// roster is one immutable view of the membership.
type roster struct {
	all      []*Server
	byStatus map[netip.AddrPort][]*Server // for status replies
	byCalc   map[netip.AddrPort][]*Server // for canary replies
	rotation []*Server                    // the servers that take new work now
}

// membership owns the list of servers and everything that changes it.
type membership struct {
	cfg      *Config
	counters *counters
	auth     *codec.Authenticator // nil without Config.ControlKey

	mu     sync.Mutex // serializes every change: the list, a server's state, the roster
	health health     // the passive-health count, under mu
	snap   atomic.Pointer[roster]
	ack    net.PacketConn // the client socket, where joins are acknowledged from; set by start, under mu

	joins      chan joinOffer // joins read on the client socket, for runJoins
	rediscover chan struct{}  // asks the SRV loop to look up now
	// Each kind of refusal logs once a second at most, on its own, so that
	// one flood does not hide another.
	refusedLog  loglimit.Limit // outside -join-allow
	unsealedLog loglimit.Limit // not sealed under -control-key
	fullLog     loglimit.Limit
	dupLog      loglimit.Limit // a calculator address listed already
	badSRVLog   loglimit.Limit
	capLog      loglimit.Limit
}

func newMembership(cfg *Config, c *counters, servers []*Server) *membership {
	m := &membership{cfg: cfg, counters: c, rediscover: make(chan struct{}, 1),
		joins:  make(chan joinOffer, joinQueue),
		health: health{maxFails: int32(cfg.MaxFails), ejectTime: cfg.EjectTime, maxEjectPct: cfg.MaxEjectPercent}}
	if cfg.ControlKey != nil {
		m.auth, _ = codec.NewAuthenticator(cfg.ControlKey) // fill checked its length
	}
	m.mu.Lock()
	m.storeLocked(servers)
	m.mu.Unlock()
	return m
}

// servers is every server in the list, in rotation or not.
func (m *membership) servers() []*Server { return m.snap.Load().all }

// rotation is the servers that take new work now.
func (m *membership) rotation() []*Server { return m.snap.Load().rotation }

// byStatus is the servers whose status port may be a: the same address
// and port, whatever the zone. The caller compares zones
// (netlist.SameAddrPort).
func (m *membership) byStatus(a netip.AddrPort) []*Server { return m.snap.Load().byStatus[addrKey(a)] }

// byCalc is the servers whose calculator port may be a, as byStatus.
func (m *membership) byCalc(a netip.AddrPort) []*Server { return m.snap.Load().byCalc[addrKey(a)] }

// addrKey is a's place in the roster's indexes: without its zone, which
// one interface may spell two ways ("eth0", "3"), and IPv4-mapped
// addresses as IPv4.
func addrKey(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}

// storeLocked makes all the list, with a new index and rotation.
func (m *membership) storeLocked(all []*Server) {
	r := &roster{all: all, byStatus: make(map[netip.AddrPort][]*Server, len(all)),
		byCalc: make(map[netip.AddrPort][]*Server, len(all))}
	for _, s := range all {
		r.byStatus[addrKey(s.status)] = append(r.byStatus[addrKey(s.status)], s)
		r.byCalc[addrKey(s.calc)] = append(r.byCalc[addrKey(s.calc)], s)
	}
	r.rotation = rotationOf(all)
	m.snap.Store(r)
}

// rotateLocked rebuilds the rotation after a server's state changed. It
// costs a pass over the list, once per change, never per request.
func (m *membership) rotateLocked() {
	r := *m.snap.Load()
	r.rotation = rotationOf(r.all)
	m.snap.Store(&r)
}

// find returns the server with both these addresses, or nil.
func (m *membership) find(calc, status netip.AddrPort) *Server {
	for _, s := range m.byStatus(status) {
		if netlist.SameAddrPort(s.calc, calc) && netlist.SameAddrPort(s.status, status) {
			return s
		}
	}
	return nil
}

// listedCalc returns the server listed at calculator address calc, or nil.
// There is one at most: one calculator address is one server, however many
// ways it was named (-server, DNS, joins).
func (m *membership) listedCalc(calc netip.AddrPort) *Server {
	for _, s := range m.byCalc(calc) {
		if netlist.SameAddrPort(s.calc, calc) {
			return s
		}
	}
	return nil
}

// newLearned returns a server learned while running. Unlike the configured
// ones, it takes no work until its status port has answered a poll: a join
// may be spoofed, and a DNS record may be wrong about the status port.
func newLearned(a ServerAddr, calc, status netip.AddrPort, every time.Duration, src source) *Server {
	s := newServerAt(a, calc, status, every)
	s.source = src
	s.state.down.Store(true)
	return s
}

// addLocked puts s in the list, where the poller finds it at its next
// tick. It reports false when the list is full.
func (m *membership) addLocked(s *Server) bool {
	old := m.servers()
	if len(old) >= m.cfg.MaxServers {
		return false
	}
	m.storeLocked(append(slices.Clip(old), s))
	return true
}

// removeLocked takes s out of the list, and so out of the poller's
// schedule and its load model. Requests in flight to it still get its
// answers: the pending table holds the server itself, not its place in
// the list. The caller logs.
func (m *membership) removeLocked(s *Server) bool {
	old := m.servers()
	i := slices.Index(old, s)
	if i < 0 {
		return false
	}
	s.removed.Store(true)
	m.health.forgetLocked(s)
	m.storeLocked(slices.Delete(slices.Clone(old), i, i+1))
	return true
}

// remove takes s out of the list, for a reason it logs.
func (m *membership) remove(s *Server, why string) {
	m.mu.Lock()
	ok := m.removeLocked(s)
	m.mu.Unlock()
	if ok {
		m.logRemoved(s, why)
	}
}

func (m *membership) logRemoved(s *Server, why string) {
	m.cfg.Logger.Info("udpproxy: server removed", "server", s.Name(), "addr", s.addr.Calc, "via", s.source.String(), "why", why)
}

func (m *membership) logAdded(s *Server, name string) {
	m.cfg.Logger.Info("udpproxy: server added", "name", name, "addr", s.addr.Calc, "status", s.addr.Status, "via", s.source.String())
}

// start is called by Serve with the client socket, which acknowledges
// joins.
func (m *membership) start(client net.PacketConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ack = client
}

// reported takes what a status reply from s said, once the poller has
// stored it: whether s drains; and an answer brings a server that was down
// back. first says it was s's first report.
func (m *membership) reported(s *Server, draining, first bool) {
	s.state.misses.Store(0)
	if s.state.draining.Load() == draining && !s.state.down.Load() {
		return // nothing to change: the common case, without the lock
	}
	m.mu.Lock()
	if s.removed.Load() {
		m.mu.Unlock()
		return
	}
	drainingChanged := s.state.draining.Swap(draining) != draining
	cameBack := s.state.down.Swap(false)
	m.rotateLocked()
	m.mu.Unlock()
	if drainingChanged {
		m.cfg.Logger.Info("udpproxy: server draining", "server", s.Name(), "draining", draining)
	}
	if cameBack {
		msg := "udpproxy: server back in rotation"
		if first {
			msg = "udpproxy: server in rotation"
		}
		m.cfg.Logger.Info(msg, "server", s.Name(), "addr", s.addr.Calc)
	}
}

// missed counts a poll s left unanswered. MaxMisses in a row take it out
// of rotation, or, if it joined, out of the list: if it comes back, it
// joins again. It reports whether s is still worth asking again at once
// (it has not been given up on).
func (m *membership) missed(s *Server) bool {
	n := s.state.misses.Add(1)
	if int(n) < m.cfg.MaxMisses {
		return true
	}
	if s.source == fromJoin {
		m.remove(s, "missed polls")
		return false
	}
	m.mu.Lock()
	wasDown := s.state.down.Swap(true)
	if !wasDown {
		m.rotateLocked()
	}
	m.mu.Unlock()
	if !wasDown {
		m.cfg.Logger.Warn("udpproxy: server out of rotation", "server", s.Name(), "addr", s.addr.Calc, "missed_polls", n)
	}
	return false
}

// answered notes an answer from s on the data path.
func (m *membership) answered(s *Server) { m.health.answered(s) }

// failed notes a try at s that got no answer in time; MaxFails in a row
// eject it.
func (m *membership) failed(s *Server, now int64) {
	if reason := m.health.failed(s); reason != "" {
		m.eject(s, now, reason)
	}
}

// eject takes s out of rotation for a reason, unless the cap says no.
func (m *membership) eject(s *Server, now int64, reason string) {
	m.mu.Lock()
	res, d := m.health.ejectLocked(s, now, len(m.servers()), reason)
	if res == ejectDone {
		m.rotateLocked()
	}
	m.mu.Unlock()
	switch {
	case res == ejectDone:
		m.cfg.Logger.Warn("udpproxy: server ejected", "server", s.Name(), "addr", s.addr.Calc, "reason", reason, "for_at_least", d)
	case res == ejectCapped && m.capLog.AllowAt(now):
		m.cfg.Logger.Warn("udpproxy: server not ejected: too many are out already", "server", s.Name(),
			"addr", s.addr.Calc, "reason", reason, "max_eject_percent", m.cfg.MaxEjectPercent)
	}
}

// back returns s to rotation: its calculator port answered a canary right.
func (m *membership) back(s *Server, now int64) {
	m.mu.Lock()
	out, ok := m.health.backLocked(s, now)
	if ok {
		m.rotateLocked()
	}
	m.mu.Unlock()
	if ok {
		m.cfg.Logger.Info("udpproxy: server back from ejection: its calculator port answers", "server", s.Name(),
			"addr", s.addr.Calc, "out", out.Round(time.Millisecond))
	}
}
