package codec

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// The fuzz targets check that no byte sequence makes a decoder panic, and
// that whatever decodes re-encodes to the same value. They also check both
// ends of the rule on server-supplied text (check.go): every name and
// message a decoder lets through is printable, and every error message
// discal writes itself passes, so a server never sends what a proxy would
// refuse. Seeds live in testdata/fuzz; run one with:
// go test -fuzz FuzzDecodeRequest ./codec

// checkMessage fails t unless err's reply message passes CheckMessage.
func checkMessage(t *testing.T, err error) {
	t.Helper()
	m := AsError(err).Message
	if m == "" {
		t.Fatal("error without a message")
	}
	if err := CheckMessage(m); err != nil {
		t.Fatalf("discal's own message refused: %v", err)
	}
	// The spec's rule (docs/protocol.md): a detailed message starts with the
	// short one.
	if short := AsError(err).Short().Message; !strings.HasPrefix(m, short) {
		t.Fatalf("message %q does not start with its code's %q", m, short)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(AppendRequest(nil, 1, Request{OpAdd, IntNumber(2), IntNumber(3)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil && err != ErrTooLarge {
			return
		}
		if len(b) < HeaderSize || b[0] != Magic {
			t.Fatalf("accepted %x", b)
		}
		out := AppendHeader(nil, h.Kind, h.ID)
		if string(out) != string(b[:HeaderSize]) {
			t.Fatalf("header %x re-encodes as %x", b[:HeaderSize], out)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, 1, Request{OpDiv, FloatNumber(1.5), IntNumber(-3)})[HeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRequest(body)
		if err != nil {
			checkMessage(t, err)
			return
		}
		again, err := DecodeRequest(AppendRequest(nil, 0, r)[HeaderSize:])
		if err != nil || again.Op != r.Op || !again.A.Equal(r.A) || !again.B.Equal(r.B) {
			t.Fatalf("%#v re-decodes as %#v, %v", r, again, err)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(AppendReply(nil, 1, Reply{Result: IntNumber(42), Server: "s1"})[HeaderSize:])
	f.Add(AppendReply(nil, 1, Reply{Err: ErrDivByZero})[HeaderSize:])
	f.Add(AppendReply(nil, 1, Reply{Err: ErrDivByZero, Server: "s1\nforged"})[HeaderSize:])
	f.Add(AppendReply(nil, 1, Reply{Err: &Error{Code: 5, Message: "\x1b[2J"}})[HeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReply(body)
		if err != nil {
			return
		}
		if CheckName(r.Server) != nil || (r.Err != nil && CheckMessage(r.Err.Message) != nil) {
			t.Fatalf("%q let through in %#v", body, r)
		}
		again, err := DecodeReply(AppendReply(nil, 0, r)[HeaderSize:])
		if err != nil || again.Server != r.Server || !again.Result.Equal(r.Result) ||
			(again.Err == nil) != (r.Err == nil) || (r.Err != nil && *again.Err != *r.Err) {
			t.Fatalf("%#v re-decodes as %#v, %v", r, again, err)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add(AppendStatus(nil, 1, Status{Server: "s1", HostCPU: 50, Cores: 2})[HeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := DecodeStatus(body)
		if err != nil {
			return
		}
		if CheckName(s.Server) != nil || strings.Count(string(AppendStatusText(nil, s)), "\n") != 1 {
			t.Fatalf("%q let through in %#v", body, s)
		}
		_ = AppendStatusText(nil, s)
		again, err := DecodeStatus(AppendStatus(nil, 0, s)[HeaderSize:])
		if err != nil || again.Server != s.Server || again.Cores != s.Cores || again.Served != s.Served {
			t.Fatalf("%#v re-decodes as %#v, %v", s, again, err)
		}
	})
}

func FuzzParseExpr(f *testing.F) {
	for _, s := range []string{"6 * 7", "add 2 3", "-3--2", "1e-3/2", "nan+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseExpr(s)
		if err != nil {
			checkMessage(t, err)
			return
		}
		if !r.Op.Valid() {
			t.Fatalf("ParseExpr(%q) gave op %d", s, r.Op)
		}
		// What parses prints as an expression that parses to the same values.
		again, err := ParseExpr(r.String())
		same := func(x, y Number) bool {
			a, b := x.Float64(), y.Float64()
			return a == b || (math.IsNaN(a) && math.IsNaN(b))
		}
		if err != nil || again.Op != r.Op || !same(again.A, r.A) || !same(again.B, r.B) {
			t.Fatalf("ParseExpr(%q) = %v, which re-parses as %v, %v", s, r, again, err)
		}
	})
}

func FuzzDecodeJoin(f *testing.F) {
	f.Add(AppendJoin(nil, 1, Join{CalcPort: 7001, Name: "s1"})[HeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		j, err := DecodeJoin(body)
		if err != nil {
			return
		}
		if CheckName(j.Name) != nil {
			t.Fatalf("%q let through in %#v", body, j)
		}
		if j.CalcPort == 0 {
			t.Fatalf("%x decoded with port 0", body)
		}
		again, err := DecodeJoin(AppendJoin(nil, 0, j)[HeaderSize:])
		if err != nil || again != j {
			t.Fatalf("%#v re-decodes as %#v, %v", j, again, err)
		}
	})
}

func FuzzDecodeControl(f *testing.F) {
	f.Add(AppendControl(nil, 1, Control{Cmd: CmdBurn, Fraction: 0.5})[HeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeControl(body)
		if err != nil {
			checkMessage(t, err)
			return
		}
		if c.check(c.Cmd == CmdBurn) != nil {
			t.Fatalf("decoded %+v, which check refuses", c)
		}
		again, err := DecodeControl(AppendControl(nil, 0, c)[HeaderSize:])
		if err != nil || again != c {
			t.Fatalf("%+v re-decodes as %+v, %v", c, again, err)
		}
	})
}

// FuzzCheckSeal holds the authenticator to its promise: whatever the bytes,
// Check accepts only what Seal under the key made of the same message and
// timestamp, and a sealed message with any one byte changed is refused.
func FuzzCheckSeal(f *testing.F) {
	key := bytes.Repeat([]byte{0x5a}, MinKeySize)
	now := time.Unix(1_700_000_000, 0)
	f.Add(Seal(AppendControl(nil, 1, Control{Cmd: CmdDrain}), key, now), 0, byte(0))
	f.Add(Seal(AppendJoin(nil, 2, Join{CalcPort: 7001, Name: "s1"}), key, now), 12, byte(1))
	f.Fuzz(func(t *testing.T, msg []byte, at int, flip byte) {
		body, _, ts, err := Check(msg, key, now)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("%v does not wrap ErrUnauthenticated", err)
			}
		} else {
			// Accepted: it must be exactly what Seal makes.
			orig := append([]byte(nil), msg[:HeaderSize]...)
			orig[1] &^= byte(KindSealed)
			orig = append(orig, body...)
			if again := Seal(orig, key, time.Unix(0, ts)); !bytes.Equal(again, msg) {
				t.Fatalf("accepted %x, which Seal makes as %x", msg, again)
			}
		}
		if flip == 0 {
			return
		}
		// A message that checks stops checking with one byte changed.
		if len(msg) < HeaderSize {
			return
		}
		b := append([]byte(nil), msg...)
		b[0] = Magic
		sealed := Seal(b, key, now)
		i := at % len(sealed)
		if i < 0 {
			i = -i
		}
		if _, _, _, err := Check(sealed, key, now); err != nil {
			t.Fatalf("a fresh seal refused: %v", err)
		}
		sealed[i] ^= flip
		if _, _, _, err := Check(sealed, key, now); err == nil {
			t.Fatalf("byte %d changed by %#x and still accepted", i, flip)
		}
	})
}
