package udpserver

import (
	"net"
	"time"

	"github.com/discal/discal/codec"
)

// Status returns the figures the status port reports.
func (s *Server) Status() codec.Status {
	return codec.Status{
		Server:   s.Name(),
		HostCPU:  s.sampler.HostCPU(),
		ProcCPU:  s.sampler.ProcCPU(),
		Cores:    s.sampler.cores,
		InFlight: int(s.inFlight.Load()),
		Served:   s.served.Load(),
		Errors:   s.failed.Load(),
		Uptime:   s.uptime(),
	}
}

func (s *Server) uptime() time.Duration {
	if t := s.started.Load(); t != 0 {
		return time.Since(time.Unix(0, t))
	}
	return 0
}

// statusLoop answers the status port. One reader is enough: each answer is
// a handful of atomic loads and an encode, with no measurement to wait on.
func (s *Server) statusLoop(conn *net.UDPConn) {
	in := make([]byte, codec.MaxDatagram+1)
	out := make([]byte, 0, codec.MaxDatagram)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if s.readError(err) {
				return
			}
			continue
		}
		if reply := s.handleStatus(out[:0], in[:n]); reply != nil {
			_, _ = conn.WriteToUDPAddrPort(reply, from)
		}
	}
}

func (s *Server) handleStatus(out, pkt []byte) []byte {
	if len(pkt) > 0 && pkt[0] != codec.Magic {
		if !codec.IsText(pkt) || len(pkt) > codec.MaxDatagram || codec.IsTextReply(pkt) {
			s.dropped.Add(1)
			return nil
		}
		switch cmd := codec.TextCommand(pkt); cmd {
		case "status":
			return codec.AppendStatusText(out, s.Status())
		default:
			return codec.AppendTextError(out, codec.Errorf(codec.CodeUnexpected,
				"unknown command %q (commands: status)", truncate(cmd, 32)))
		}
	}
	h, err := codec.ParseHeader(pkt)
	switch {
	case err != nil && err != codec.ErrTooLarge:
		s.dropped.Add(1)
		return nil
	case h.Kind == codec.KindStatusQuery:
		return codec.AppendStatus(out, h.ID, s.Status())
	case h.Kind == codec.KindRequest:
		return codec.AppendReply(out, h.ID, codec.Reply{Server: s.name,
			Err: codec.Errorf(codec.CodeUnexpected, "unexpected message: requests go to the calculator port")})
	}
	s.dropped.Add(1)
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
