package udpserver

import (
	"net/netip"

	"github.com/discal/discal/internal/netlist"
)

// Datagrams refused for a reason the operator can change are counted and
// logged, at most once a second for each reason, with the source and the
// flag that would let it in: nginx logs "access forbidden by rule", dnsdist
// its ACL drops. With counters alone, a server in a container, whose
// traffic comes from the container network's gateway, answered nothing and
// said nothing.

// deny counts a datagram on port ("calc" or "status") from a source
// outside -allow, and says so now and then.
func (s *Server) deny(from netip.AddrPort, port string) {
	s.denied.Add(1)
	if s.deniedLog.Allow() {
		s.cfg.Logger.Warn("udpserver: datagram refused: its source is not in -allow", "from", from.String(),
			"port", port, "allow", netlist.String(s.cfg.Allow))
	}
}

// refuseUnsealed counts a control message from from that is not obeyed:
// -control-key is set, and it carries no seal that checks (why says what
// was wrong with it), or it is a text command from beyond loopback.
func (s *Server) refuseUnsealed(from netip.AddrPort, why string) {
	s.unauthenticated.Add(1)
	if s.unsealedLog.Allow() {
		s.cfg.Logger.Warn("udpserver: control refused: not sealed under -control-key", "from", from.String(), "why", why)
	}
}
