package udpserver

import (
	"net"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/udpbatch"
)

// batch is how many datagrams a worker reads and answers per system call.
const batch = 32

// worker holds one calculator worker's batch I/O and buffers, reused for
// every datagram so that serving a request allocates nothing.
type worker struct {
	r    *udpbatch.Reader
	w    *udpbatch.Writer
	in   []udpbatch.Message
	out  []udpbatch.Message
	slab []byte // one MaxDatagram slot per reply of a batch
	line []byte // the batch's operation log lines
}

func newWorker(conn net.PacketConn) *worker {
	w := &worker{
		in:   make([]udpbatch.Message, batch),
		out:  make([]udpbatch.Message, 0, batch),
		slab: make([]byte, batch*codec.MaxDatagram),
		line: make([]byte, 0, batch*64),
	}
	if conn != nil {
		w.r = udpbatch.NewReader(conn, udpbatch.Options{Batch: batch, MaxSize: codec.MaxDatagram})
		w.w = udpbatch.NewWriter(conn, udpbatch.Options{Batch: batch, MaxSize: codec.MaxDatagram})
	}
	return w
}

// reply returns the i-th reply slot of the batch, empty.
func (w *worker) reply(i int) []byte {
	return w.slab[i*codec.MaxDatagram : i*codec.MaxDatagram : (i+1)*codec.MaxDatagram]
}

// calcLoop reads a batch, answers each request in it, logs the batch's
// operations with one write and sends the replies with one call.
func (s *Server) calcLoop(conn net.PacketConn) {
	w := newWorker(conn)
	for {
		n, err := w.r.ReadBatch(w.in)
		if err != nil {
			if s.readError(err) {
				return
			}
			continue
		}
		s.inFlight.Add(int64(n))
		w.out = w.out[:0]
		for i, m := range w.in[:n] {
			if !s.allowed(m.Addr) {
				s.deny(m.Addr, "calc") // no answer: an answer is what a spoofer wants
				continue
			}
			if out := s.handleCalc(w, m.Buf, w.reply(i)); out != nil {
				w.out = append(w.out, udpbatch.Message{Buf: out, Addr: m.Addr})
			}
		}
		if len(w.line) > 0 {
			s.oplog.write(w.line)
			w.line = w.line[:0]
		}
		_, _ = w.w.WriteBatch(w.out)
		s.inFlight.Add(-int64(n))
	}
}

// handleCalc answers one datagram from the calculator port, encoding the
// reply into dst. It returns the reply, or nil when the datagram cannot be
// answered: too short to carry an ID, neither binary nor text, or itself an
// answer (answering replies could make two peers bounce errors forever).
func (s *Server) handleCalc(w *worker, pkt, dst []byte) []byte {
	if len(pkt) > 0 && pkt[0] != codec.Magic {
		if codec.Gate(pkt) != codec.TextQuestion {
			s.dropped.Add(1)
			return nil
		}
		return s.handleText(w, pkt, dst)
	}
	h, err := codec.ParseHeader(pkt)
	switch {
	case err == codec.ErrTooLarge:
		if h.Kind != codec.KindRequest && h.Kind != codec.KindStatusQuery {
			s.dropped.Add(1)
			return nil
		}
		return s.answer(w, dst, len(pkt), h.ID, false, nil, codec.Number{}, codec.ErrTooLarge)
	case err != nil:
		s.dropped.Add(1)
		return nil
	case h.Kind == codec.KindStatusQuery:
		return s.answer(w, dst, len(pkt), h.ID, false, nil, codec.Number{},
			codec.Errorf(codec.CodeUnexpected, "unexpected message: status queries go to the status port"))
	case h.Kind != codec.KindRequest:
		s.dropped.Add(1)
		return nil
	}
	req, err := codec.DecodeRequest(pkt[codec.HeaderSize:])
	if err != nil {
		return s.answer(w, dst, len(pkt), h.ID, false, nil, codec.Number{}, codec.AsError(err))
	}
	res, err := arith.Eval(req.Op, req.A, req.B)
	if err != nil {
		return s.answer(w, dst, len(pkt), h.ID, false, &req, codec.Number{}, codec.AsError(err))
	}
	return s.answer(w, dst, len(pkt), h.ID, false, &req, res, nil)
}

func (s *Server) handleText(w *worker, pkt, dst []byte) []byte {
	if len(pkt) > codec.MaxDatagram {
		return s.answer(w, dst, len(pkt), 0, true, nil, codec.Number{}, codec.ErrTooLarge)
	}
	req, err := codec.ParseExpr(string(pkt))
	if err != nil {
		return s.answer(w, dst, len(pkt), 0, true, nil, codec.Number{}, codec.AsError(err))
	}
	res, err := arith.Eval(req.Op, req.A, req.B)
	if err != nil {
		return s.answer(w, dst, len(pkt), 0, true, &req, codec.Number{}, codec.AsError(err))
	}
	return s.answer(w, dst, len(pkt), 0, true, &req, res, nil)
}

// answer counts and logs an operation and encodes its reply into dst, within
// the amplification bound of the reqLen-byte request it answers.
func (s *Server) answer(w *worker, dst []byte, reqLen int, id uint64, text bool, req *codec.Request, res codec.Number, e *codec.Error) []byte {
	s.served.Add(1)
	if e != nil {
		s.failed.Add(1)
		if e.Code < maxCode {
			s.codes[e.Code].Add(1)
		}
	}
	if req != nil && req.Op.Valid() {
		s.ops[req.Op].Add(1)
	}
	if !s.cfg.Quiet {
		w.line = s.appendLogLine(w.line, id, text, req, res, e)
	}
	return codec.AppendBounded(dst, reqLen, text, id, codec.Reply{Result: res, Err: e, Server: s.name})
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
