package udpserver

import (
	"net"
	"time"

	"github.com/discal/discal/calc"
	"github.com/discal/discal/codec"
)

// worker holds one calculator worker's buffers, reused for every datagram so
// that serving a request allocates nothing.
type worker struct {
	in   []byte
	out  []byte
	line []byte
}

func newWorker() *worker {
	return &worker{
		// One byte more than the limit tells an oversized datagram from
		// one that just fits.
		in:   make([]byte, codec.MaxDatagram+1),
		out:  make([]byte, 0, codec.MaxDatagram),
		line: make([]byte, 0, 256),
	}
}

func (s *Server) calcLoop(conn *net.UDPConn) {
	w := newWorker()
	for {
		n, from, err := conn.ReadFromUDPAddrPort(w.in)
		if err != nil {
			if s.readError(err) {
				return
			}
			continue
		}
		s.inFlight.Add(1)
		if out := s.handleCalc(w, w.in[:n]); out != nil {
			_, _ = conn.WriteToUDPAddrPort(out, from)
		}
		s.inFlight.Add(-1)
	}
}

// handleCalc answers one datagram from the calculator port. It returns the
// reply to send, or nil when the datagram cannot be answered: too short to
// carry an ID, neither binary nor text, or itself an answer (answering
// replies could make two peers bounce errors forever).
func (s *Server) handleCalc(w *worker, pkt []byte) []byte {
	if len(pkt) > 0 && pkt[0] != codec.Magic {
		if !codec.IsText(pkt) {
			s.dropped.Add(1)
			return nil
		}
		return s.handleText(w, pkt)
	}
	h, err := codec.ParseHeader(pkt)
	switch {
	case err == codec.ErrTooLarge:
		if h.Kind != codec.KindRequest && h.Kind != codec.KindStatusQuery {
			s.dropped.Add(1)
			return nil
		}
		return s.answer(w, h.ID, false, nil, codec.Number{}, codec.ErrTooLarge)
	case err != nil:
		s.dropped.Add(1)
		return nil
	case h.Kind == codec.KindStatusQuery:
		return s.answer(w, h.ID, false, nil, codec.Number{},
			codec.Errorf(codec.CodeUnexpected, "unexpected message: status queries go to the status port"))
	case h.Kind != codec.KindRequest:
		s.dropped.Add(1)
		return nil
	}
	req, err := codec.DecodeRequest(pkt[codec.HeaderSize:])
	if err != nil {
		return s.answer(w, h.ID, false, nil, codec.Number{}, codec.AsError(err))
	}
	res, err := calc.Eval(req.Op, req.A, req.B)
	if err != nil {
		return s.answer(w, h.ID, false, &req, codec.Number{}, codec.AsError(err))
	}
	return s.answer(w, h.ID, false, &req, res, nil)
}

func (s *Server) handleText(w *worker, pkt []byte) []byte {
	if len(pkt) > codec.MaxDatagram {
		return s.answer(w, 0, true, nil, codec.Number{}, codec.ErrTooLarge)
	}
	req, err := codec.ParseExpr(string(pkt))
	if err != nil {
		return s.answer(w, 0, true, nil, codec.Number{}, codec.AsError(err))
	}
	res, err := calc.Eval(req.Op, req.A, req.B)
	if err != nil {
		return s.answer(w, 0, true, &req, codec.Number{}, codec.AsError(err))
	}
	return s.answer(w, 0, true, &req, res, nil)
}

// answer counts and logs an operation and encodes its reply into w.out.
func (s *Server) answer(w *worker, id uint64, text bool, req *codec.Request, res codec.Number, e *codec.Error) []byte {
	s.served.Add(1)
	if e != nil {
		s.failed.Add(1)
	}
	if !s.cfg.Quiet {
		w.line = s.appendLogLine(w.line[:0], id, text, req, res, e)
		s.oplog.write(w.line)
	}
	if text {
		r := codec.Reply{Result: res, Err: e}
		return codec.AppendTextReply(w.out[:0], r)
	}
	return codec.AppendReply(w.out[:0], id, codec.Reply{Result: res, Err: e, Server: s.name})
}

// appendLogLine formats one operation for the console:
//
//	13:40:01.123 s1 id=000000000000002a 6 * 7 = 42
//	13:40:01.124 s1 id=text 1 / 0 = error: division by zero
func (s *Server) appendLogLine(b []byte, id uint64, text bool, req *codec.Request, res codec.Number, e *codec.Error) []byte {
	b = time.Now().AppendFormat(b, "15:04:05.000")
	b = append(b, ' ')
	b = append(b, s.name...)
	if text {
		b = append(b, " id=text "...)
	} else {
		b = append(b, " id="...)
		b = appendHex16(b, id)
		b = append(b, ' ')
	}
	if req != nil {
		b = req.AppendText(b)
		b = append(b, " = "...)
	}
	if e != nil {
		b = append(b, "error: "...)
		b = append(b, e.Message...)
	} else {
		b = res.AppendText(b)
	}
	return append(b, '\n')
}

func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>shift)&0xf])
	}
	return b
}
