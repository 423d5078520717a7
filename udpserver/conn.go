package udpserver

import (
	"net"
	"net/netip"

	"github.com/discal/discal/codec"
)

// The loops in this file serve a socket that is not a *net.UDPConn: a
// wrapper that counts or filters, a test double. They read and answer one
// datagram at a time through the net.PacketConn interface, and allocate for
// each datagram's address; the batch loops of calculator.go and status.go
// are the fast path.

// packetCalcLoop is calcLoop for any net.PacketConn.
func (s *Server) packetCalcLoop(conn net.PacketConn) {
	w := newWorker(nil)
	in := make([]byte, codec.MaxDatagram+1) // one byte more, so that an oversized datagram shows
	for {
		n, addr, err := conn.ReadFrom(in)
		if err != nil {
			if s.readError(err) {
				return
			}
			continue
		}
		if !s.allowed(addrPort(addr)) {
			s.denied.Add(1)
			continue
		}
		s.inFlight.Add(1)
		out := s.handleCalc(w, in[:n], w.reply(0))
		if len(w.line) > 0 {
			s.oplog.write(w.line)
			w.line = w.line[:0]
		}
		if out != nil {
			_, _ = conn.WriteTo(out, addr)
		}
		s.inFlight.Add(-1)
	}
}

// packetStatusLoop is statusLoop for any net.PacketConn.
func (s *Server) packetStatusLoop(conn net.PacketConn) {
	in := make([]byte, codec.MaxDatagram+1)
	out := make([]byte, 0, codec.MaxDatagram)
	for {
		n, addr, err := conn.ReadFrom(in)
		if err != nil {
			if s.readError(err) {
				return
			}
			continue
		}
		from := addrPort(addr)
		if !s.allowed(from) {
			s.denied.Add(1)
			continue
		}
		if reply := s.handleStatus(out[:0], in[:n], from); reply != nil {
			_, _ = conn.WriteTo(reply, addr)
		}
	}
}

// addrPort returns a socket address as a netip.AddrPort, IPv4-mapped
// addresses unmapped as the batch reader does, so that the allow list sees
// one form. An address that is not IP gives the zero AddrPort, which no
// allow list contains.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	if u, ok := a.(*net.UDPAddr); ok {
		ap = u.AddrPort()
	} else if a != nil {
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// sendTo writes b to addr on conn, through the allocation-free call when
// conn is a *net.UDPConn.
func sendTo(conn net.PacketConn, b []byte, addr netip.AddrPort) error {
	if u, ok := conn.(*net.UDPConn); ok {
		_, err := u.WriteToUDPAddrPort(b, addr)
		return err
	}
	_, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(addr))
	return err
}
