package udpserver

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/udpbatch"
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
// It reads what has come in one call and answers it in one.
func (s *Server) statusLoop(conn net.PacketConn) {
	opt := udpbatch.Options{Batch: statusBatch, MaxSize: codec.MaxDatagram}
	r, w := udpbatch.NewReader(conn, opt), udpbatch.NewWriter(conn, opt)
	in := make([]udpbatch.Message, statusBatch)
	out := make([]udpbatch.Message, 0, statusBatch)
	slab := make([]byte, statusBatch*codec.MaxDatagram)
	for {
		n, err := r.ReadBatch(in)
		if err != nil {
			if s.readError(err) {
				return
			}
			continue
		}
		out = out[:0]
		for i, m := range in[:n] {
			if !s.allowed(m.Addr) {
				s.deny(m.Addr, "status")
				continue
			}
			buf := slab[i*codec.MaxDatagram : i*codec.MaxDatagram : (i+1)*codec.MaxDatagram]
			if reply := s.handleStatus(buf, m.Buf, m.Addr); reply != nil {
				out = append(out, udpbatch.Message{Buf: reply, Addr: m.Addr})
			}
		}
		_, _ = w.WriteBatch(out)
		if len(out) > 0 {
			s.sampler.ask() // the figures were read: time for fresh ones
		}
	}
}

// statusBatch is how many datagrams the status reader takes per call:
// polls from a few proxies, and the odd command.
const statusBatch = 16

// handleStatus answers one datagram from the status port, encoding the
// answer into out, or returns nil when it gets none. Errors and replies to
// binary requests keep to the amplification bound; the text status line is
// the one answer larger than its question, to allowed sources only, and a
// binary status reply goes only to a query padded to a tenth of its size.
func (s *Server) handleStatus(out, pkt []byte, from netip.AddrPort) []byte {
	if len(pkt) > 0 && pkt[0] != codec.Magic {
		if codec.Gate(pkt) != codec.TextQuestion {
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
	return s.handleBinaryStatus(out, pkt, from)
}

// handleBinaryStatus answers a binary datagram on the status port.
func (s *Server) handleBinaryStatus(out, pkt []byte, from netip.AddrPort) []byte {
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
	case h.Kind.Base() == codec.KindControl:
		return s.handleControl(out, pkt, h, from)
	case h.Kind.Base() == codec.KindJoinAck && s.joiner != nil:
		if _, ok := s.accept(pkt, from); ok && !s.joiner.ack(h.ID) {
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
	if c, ok, e := textControl(word, arg); ok {
		// Like everything on this port, answered to allowed sources
		// only; with a key, obeyed from loopback only: the text form
		// carries no seal.
		if s.auth != nil && !s.trusted(from) {
			s.refuseUnsealed(from, "a text command, from beyond loopback")
			return nil, nil
		}
		if e != nil {
			return nil, e
		}
		s.control(c, from)
		// "ok: ..." is an answer: no endpoint answers it, so a spoofed
		// command between two status ports cannot echo forever.
		out = append(out, "ok: "...)
		if c.Cmd == codec.CmdBurn {
			return append(strconv.AppendFloat(append(out, "burn "...), c.Fraction, 'g', -1, 64), '\n'), nil
		}
		return append(append(out, c.Cmd...), '\n'), nil
	}
	if word == "status" {
		out = codec.AppendStatusText(out, s.Status())
		if f := s.burner.get(); f > 0 {
			// The setting, beside the CPU figures, which stay what the
			// sampler measured.
			out = strconv.AppendFloat(append(out[:len(out)-1], " burn="...), f, 'g', -1, 64)
			out = append(out, '\n')
		}
		if s.auth != nil {
			out = strconv.AppendUint(append(out[:len(out)-1], " unauthenticated="...), s.unauthenticated.Load(), 10)
			out = append(out, '\n')
		}
		return out, nil
	}
	// The command itself is not echoed: the answer stays within the
	// amplification bound for any command of six bytes or more.
	return nil, codec.Errorf(codec.CodeUnexpected, "unexpected message: try status, burn, drain, undrain")
}
