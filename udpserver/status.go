package udpserver

import (
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/discal/discal/codec"
)

// Status returns the figures the status port reports.
func (s *Server) Status() codec.Status {
	return codec.Status{
		Server:    s.Name(),
		HostCPU:   s.sampler.HostCPU(),
		ProcCPU:   s.sampler.ProcCPU(),
		Cores:     s.sampler.cores,
		InFlight:  int(s.inFlight.Load()),
		Served:    s.served.Load(),
		Errors:    s.failed.Load(),
		Uptime:    s.uptime(),
		HostID:    s.sampler.hostID,
		ProcID:    procID,
		HostCores: s.sampler.hostCores,
		Dropped:   s.dropped.Load() + s.denied.Load(),
		Draining:  s.draining.Load(),
		CalcPort:  uint16(s.calcPort.Load()),
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
		if !s.allowed(from) {
			s.denied.Add(1)
			continue
		}
		if reply := s.handleStatus(out[:0], in[:n], from); reply != nil {
			_, _ = conn.WriteToUDPAddrPort(reply, from)
		}
	}
}

// handleStatus answers one datagram from the status port, encoding the
// answer into out, or returns nil when it gets none. Errors and replies to
// binary requests keep to the amplification bound; the text status line is
// the one answer larger than its question, to allowed sources only, and a
// binary status reply goes only to a query padded to a tenth of its size.
func (s *Server) handleStatus(out, pkt []byte, from netip.AddrPort) []byte {
	if len(pkt) > 0 && pkt[0] != codec.Magic {
		if !codec.IsText(pkt) || codec.IsTextReply(pkt) || len(pkt) < codec.MinTextRequest {
			s.dropped.Add(1)
			return nil
		}
		if len(pkt) > codec.MaxDatagram {
			return codec.AppendBounded(out, len(pkt), true, 0, codec.Reply{Err: codec.ErrTooLarge})
		}
		reply, e := s.handleCommand(out, codec.TextCommand(pkt), from)
		if e != nil {
			reply = codec.AppendBounded(out, len(pkt), true, 0, codec.Reply{Err: e})
		}
		return reply
	}
	h, err := codec.ParseHeader(pkt)
	switch {
	case err == codec.ErrTooLarge && (h.Kind == codec.KindStatusQuery || h.Kind == codec.KindRequest):
		// The same answer the calculator port gives: code 11, whichever
		// port was meant.
		return codec.AppendBounded(out, len(pkt), false, h.ID, codec.Reply{Err: codec.ErrTooLarge, Server: s.name})
	case err != nil:
		s.dropped.Add(1)
		return nil
	case h.Kind == codec.KindStatusQuery:
		reply := codec.AppendStatus(out, h.ID, s.Status())
		if !codec.Fits(len(reply), len(pkt)) {
			// A query must be padded to a tenth of the answer's size (the
			// proxy's are StatusQuerySize): otherwise the status port
			// would amplify. A short form would tell the proxy nothing.
			s.dropped.Add(1)
			return nil
		}
		return reply
	case h.Kind == codec.KindRequest:
		return codec.AppendBounded(out, len(pkt), false, h.ID, codec.Reply{Server: s.name,
			Err: codec.Errorf(codec.CodeUnexpected, "unexpected message: requests go to the calculator port")})
	case h.Kind == codec.KindJoinAck && s.joiner != nil:
		if !s.joiner.ack(h.ID) {
			s.dropped.Add(1)
		}
		return nil
	}
	s.dropped.Add(1)
	return nil
}

// handleCommand answers a text command on the status port:
//
//	status     the load line
//	burn F     keep fraction F of a core busy (0 to 1)
//	drain      report draining: proxies send no new work (lame duck)
//	undrain    stop draining
//
// Like everything on this port, they are answered to allowed sources only.
// A command that fails returns its error for the caller to encode.
func (s *Server) handleCommand(out []byte, cmd string, from netip.AddrPort) ([]byte, *codec.Error) {
	word, arg, _ := strings.Cut(cmd, " ")
	switch word {
	case "status":
		out = codec.AppendStatusText(out, s.Status())
		if f := s.burner.get(); f > 0 {
			// The setting, beside the CPU figures, which stay what the
			// sampler measured.
			out = strconv.AppendFloat(append(out[:len(out)-1], " burn="...), f, 'g', -1, 64)
			out = append(out, '\n')
		}
		return out, nil
	case "drain", "undrain":
		if word == "drain" {
			s.Drain()
		} else {
			s.Undrain()
		}
		s.cfg.Logger.Info("udpserver "+word, "name", s.name)
		return append(append(append(out, "ok: "...), word...), '\n'), nil
	case "burn":
		// A command that changes the server; the status port answers only
		// allowed sources (by default loopback), so it is theirs alone.
		f, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
			return nil, codec.Errorf(codec.CodeSyntax, "syntax error: burn takes a fraction from 0 to 1")
		}
		s.burner.set(f)
		s.cfg.Logger.Info("udpserver burn", "name", s.name, "fraction", f)
		// "ok: ..." is an answer: no endpoint answers it, so a spoofed
		// "burn" between two status ports cannot echo forever.
		return append(strconv.AppendFloat(append(out, "ok: burn "...), f, 'g', -1, 64), '\n'), nil
	}
	// The command itself is not echoed: the answer stays within the
	// amplification bound for any command of six bytes or more.
	return nil, codec.Errorf(codec.CodeUnexpected, "unexpected message: try status, burn, drain, undrain")
}
