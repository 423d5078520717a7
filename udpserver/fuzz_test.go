package udpserver

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/discal/discal/codec"
)

// The server's handlers take anything a client sends: no input may panic
// them, no answer may be more than codec.MaxAmplification times the
// datagram it answers (codec.Fits), and every answer is one a proxy or a
// client takes: a binary reply that decodes (its name and message pass
// codec's checks), or one line of text. Run one with:
// go test -fuzz FuzzHandleCalc ./udpserver

// checkAnswer fails t unless out, an answer, is one a receiver takes.
func checkAnswer(t *testing.T, pkt, out []byte) {
	t.Helper()
	if len(out) > 0 && out[0] == codec.Magic {
		if _, err := codec.DecodeReply(out[codec.HeaderSize:]); err != nil {
			t.Fatalf("%q answered with %q, which does not decode: %v", pkt, out, err)
		}
		return
	}
	if !codec.IsText(out) || bytes.Count(out, []byte("\n")) != 1 || out[len(out)-1] != '\n' {
		t.Fatalf("%q answered with %q, not one line", pkt, out)
	}
}

func FuzzHandleCalc(f *testing.F) {
	f.Add(codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpDiv, A: codec.IntNumber(1), B: codec.IntNumber(0)}))
	f.Add([]byte("6 * 7\n"))
	f.Add([]byte("error: x"))
	f.Add(codec.AppendHeader(nil, codec.KindRequest, 3))
	s, err := New(Config{Quiet: true, Name: "a-rather-long-server-name-for-fuzzing"})
	if err != nil {
		f.Fatal(err)
	}
	w := newWorker(nil)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > codec.MaxDatagram+1 {
			pkt = pkt[:codec.MaxDatagram+1] // what a reader hands over at most
		}
		out := s.handleCalc(w, pkt, w.reply(0))
		if out == nil {
			return
		}
		if !codec.Fits(len(out), len(pkt)) {
			t.Fatalf("%q answered with %d bytes: %q", pkt, len(out), out)
		}
		checkAnswer(t, pkt, out)
		w.line = w.line[:0]
	})
}

func FuzzHandleStatus(f *testing.F) {
	f.Add(codec.AppendStatusQuery(nil, 1))
	f.Add([]byte("status\n"))
	f.Add([]byte("burn 0.5"))
	s, err := New(Config{Quiet: true})
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:5555")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > codec.MaxDatagram+1 {
			pkt = pkt[:codec.MaxDatagram+1]
		}
		out := s.handleStatus(nil, pkt, from)
		// The status line is the one answer allowed to be larger: it goes
		// to allowed sources only.
		if !codec.Fits(len(out), len(pkt)) && codec.TextCommand(pkt) != "status" {
			t.Fatalf("%q answered with %d bytes: %q", pkt, len(out), out)
		}
		if out != nil && (len(out) == 0 || out[0] != codec.Magic || out[1] == byte(codec.KindReply)) {
			checkAnswer(t, pkt, out)
		}
		s.burner.set(0)
	})
}
