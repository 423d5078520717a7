package udpproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/loglimit"
	"github.com/discal/discal/internal/netlist"
)

// Membership: the servers the proxy routes to can change while it runs.
// Three sources feed the list: the Servers of the Config (-server), which
// stay for the proxy's life; servers that join (udpserver -join), which
// leave after MaxMisses missed polls; and DNS SRV records (-server-srv,
// discovery.go), which follow the DNS answer.
//
// The list is copy-on-write. A change takes membership.mu and stores a new
// roster: the list, an index by address for the poller, and the rotation,
// the servers that take new work. The rotation is rebuilt whenever a
// server's state changes (down, draining, ejected, back), so the hot path
// reads it with one atomic load and never looks at a server that cannot
// take work, however many are listed.

// source says where a server came from.
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
	health   *health

	mu    sync.Mutex // serializes changes to the list
	rotMu sync.Mutex // serializes storing a roster, so no change is lost
	snap  atomic.Pointer[roster]

	// Set by start while the proxy serves, under mu.
	forget func(*Server)  // takes a server that left out of the load model
	ack    *net.UDPConn   // the client socket, where joins are acknowledged from
	joins  chan joinOffer // joins read on the client socket, for run

	auth       *codec.Authenticator // nil without Config.ControlKey
	rediscover chan struct{}        // asks the SRV loop to look up now
	refusedLog loglimit.Limit
	fullLog    loglimit.Limit
	badSRVLog  loglimit.Limit
}

func newMembership(cfg *Config, c *counters, h *health, servers []*Server) *membership {
	m := &membership{cfg: cfg, counters: c, health: h, rediscover: make(chan struct{}, 1),
		joins: make(chan joinOffer, joinQueue)}
	if cfg.ControlKey != nil {
		m.auth, _ = codec.NewAuthenticator(cfg.ControlKey) // fill checked its length
	}
	m.store(servers)
	h.listed = func() int { return len(m.servers()) }
	h.changed = m.changed
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

// store makes all the list, with a new index and rotation.
func (m *membership) store(all []*Server) {
	r := &roster{all: all, byStatus: make(map[netip.AddrPort][]*Server, len(all)),
		byCalc: make(map[netip.AddrPort][]*Server, len(all))}
	for _, s := range all {
		r.byStatus[addrKey(s.status)] = append(r.byStatus[addrKey(s.status)], s)
		r.byCalc[addrKey(s.calc)] = append(r.byCalc[addrKey(s.calc)], s)
	}
	m.rotMu.Lock()
	r.rotation = rotationOf(all)
	m.snap.Store(r)
	m.rotMu.Unlock()
}

// changed rebuilds the rotation after a server's state changed. It costs a
// pass over the list, once per change, never per request.
func (m *membership) changed() {
	m.rotMu.Lock()
	defer m.rotMu.Unlock()
	cur := m.snap.Load()
	r := *cur
	r.rotation = rotationOf(cur.all)
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

// newLearned returns a server learned while running. Unlike the configured
// ones, it takes no work until its status port has answered a poll: a join
// may be spoofed, and a DNS record may be wrong about the status port.
func newLearned(a ServerAddr, calc, status netip.AddrPort, poll time.Duration, src source) *Server {
	s := newServerAt(a, calc, status, poll)
	s.source = src
	s.down.Store(true)
	return s
}

// addLocked puts s in the list, where the poller finds it at its next
// tick. It reports false when the list is full. The caller holds m.mu.
func (m *membership) addLocked(s *Server) bool {
	old := m.servers()
	if len(old) >= m.cfg.MaxServers {
		return false
	}
	m.store(append(slices.Clip(old), s))
	return true
}

// removeLocked takes s out of the list, and so out of the poller's
// schedule. Requests in
// flight to it still get its answers: the pending table holds the server
// itself, not its place in the list. The caller holds m.mu and logs.
func (m *membership) removeLocked(s *Server) bool {
	old := m.servers()
	i := slices.Index(old, s)
	if i < 0 {
		return false
	}
	m.store(slices.Delete(slices.Clone(old), i, i+1))
	s.removed.Store(true)
	if m.forget != nil {
		m.forget(s)
	}
	m.health.forget(s)
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

// verify checks a joined server's status report against its join: the
// calculator port it reports must be the one the join claimed (a spoofed
// join names a wrong one; a server restarted on another port no longer
// has it). It reports whether s may stay; a server that fails is removed.
// At its first report a server that passes replaces the joined servers
// that share one of its addresses: they are what it was before.
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
		if o != s && o.source == fromJoin && (netlist.SameAddrPort(o.calc, s.calc) || netlist.SameAddrPort(o.status, s.status)) && m.removeLocked(o) {
			gone = append(gone, o)
		}
	}
	m.mu.Unlock()
	for _, o := range gone {
		m.logRemoved(o, "replaced by "+s.addr.String())
	}
	return true
}

// start is called by Serve with the client socket, which acknowledges
// joins, and the load model's forget, for servers that leave.
func (m *membership) start(client *net.UDPConn, forget func(*Server)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ack, m.forget = client, forget
}

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
			m.cfg.Logger.Warn("udpproxy: join refused: the source is outside -join-allow", "from", from.String())
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
		if m.refusedLog.AllowAt(nanotime()) {
			m.cfg.Logger.Warn("udpproxy: join refused: unauthenticated (is -control-key the servers' key?)", "from", o.from.String(), "err", err)
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
	why, added := "", (*Server)(nil)
	if m.find(calc, status) == nil {
		unverified := 0
		for _, s := range m.servers() {
			if s.source == fromJoin && s.report.Load() == nil {
				unverified++
			}
		}
		nb := newLearned(ServerAddr{Calc: calc.String(), Status: status.String()}, calc, status, m.cfg.Poll, fromJoin)
		switch {
		case unverified >= maxUnverified:
			why = "too many joins not yet verified"
		case !m.addLocked(nb):
			why = "the server list is full"
		default:
			added = nb
		}
	}
	ack := m.ack
	m.mu.Unlock()
	if why != "" {
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
		_, _ = ack.WriteToUDPAddrPort(b, o.from)
	}
}
