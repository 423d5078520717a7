package udpserver

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/discal/discal/codec"
)

// The commands that change the server (drain, undrain, burn) and the join
// acks that tell it a proxy routes work to it are control messages. A UDP
// source address proves nothing: anyone who can send the server a
// datagram can write an allowed address into it. So with
// Config.ControlKey set, a control message from a source that is not
// loopback is obeyed only when it is sealed under the key (codec.Seal);
// anything else is counted as unauthenticated and never answered.
// Loopback stays trusted without a seal, for a local operator with netcat.

// trusted reports whether a source may send control messages without a
// seal: loopback, unless a test turned that off to stand in for a host
// across the network.
func (s *Server) trusted(from netip.AddrPort) bool {
	return !s.noLoopback && from.Addr().Unmap().IsLoopback()
}

// accept returns the body of control message pkt from from, or false when
// it must not be obeyed, which it counts.
func (s *Server) accept(pkt []byte, from netip.AddrPort) ([]byte, bool) {
	body, err := s.auth.Accept(pkt, s.trusted(from), time.Now())
	if err != nil {
		s.refuseUnsealed(from, err.Error())
		return nil, false
	}
	return body, true
}

// handleControl obeys a binary control command (codec.KindControl, sealed
// or not) and answers it with a control reply, or an error reply when the
// command cannot be obeyed. One whose seal does not check is not answered:
// an answer would tell a forger what went wrong, and could be aimed at a
// victim.
func (s *Server) handleControl(out, pkt []byte, h codec.Header, from netip.AddrPort) []byte {
	body, ok := s.accept(pkt, from)
	if !ok {
		return nil
	}
	c, err := codec.DecodeControl(body)
	if err != nil {
		return codec.AppendBounded(out, len(pkt), false, h.ID, codec.Reply{Err: codec.AsError(err), Server: s.name})
	}
	s.control(c, from)
	return codec.AppendControlReply(out, h.ID, c)
}

// control obeys a command that was accepted, in either form.
func (s *Server) control(c codec.Control, from netip.AddrPort) {
	switch c.Cmd {
	case codec.CmdDrain:
		s.Drain()
	case codec.CmdUndrain:
		s.Undrain()
	case codec.CmdBurn:
		s.burner.set(c.Fraction)
		s.cfg.Logger.Info("udpserver burn", "name", s.name, "fraction", c.Fraction, "from", from.String())
		return
	}
	s.cfg.Logger.Info("udpserver "+c.Cmd, "name", s.name, "from", from.String())
}

// textControl parses a text command that changes the server; ok is false
// for a word that is not one. A burn whose fraction is not a number, or
// out of range, returns the error to answer.
func textControl(word, arg string) (c codec.Control, ok bool, e *codec.Error) {
	switch word {
	case codec.CmdDrain, codec.CmdUndrain:
		return codec.Control{Cmd: word}, true, nil
	case codec.CmdBurn:
		f, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil {
			f = math.NaN()
		}
		return codec.Control{Cmd: word, Fraction: f}, true, codec.CheckFraction(f)
	}
	return c, false, nil
}
