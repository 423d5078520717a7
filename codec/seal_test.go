package codec

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

var testKey = bytes.Repeat([]byte{0x5a}, MinKeySize)

func TestSealOpen(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sealed := func() []byte {
		return Seal(AppendControl(nil, 7, Control{Cmd: CmdDrain}), testKey, now)
	}
	otherKey := bytes.Repeat([]byte{0xa5}, MinKeySize)
	tests := []struct {
		name string
		msg  func() []byte
		key  []byte
		at   time.Time
		want error
	}{
		{"good", sealed, testKey, now, nil},
		{"edge of the window, late", sealed, testKey, now.Add(SealWindow), nil},
		{"edge of the window, early", sealed, testKey, now.Add(-SealWindow), nil},
		{"expired", sealed, testKey, now.Add(SealWindow + time.Nanosecond), ErrStale},
		{"from the future", sealed, testKey, now.Add(-SealWindow - time.Nanosecond), ErrStale},
		{"another key", sealed, otherKey, now, ErrBadSeal},
		{"unsealed", func() []byte { return AppendControl(nil, 7, Control{Cmd: CmdDrain}) }, testKey, now, ErrNoSeal},
		{"short", func() []byte { return sealed()[:HeaderSize+SealSize-1] }, testKey, now, ErrNoSeal},
		{"body changed", func() []byte { b := sealed(); b[HeaderSize+5] ^= 1; return b }, testKey, now, ErrBadSeal},
		{"ID changed", func() []byte { b := sealed(); b[IDOffset] ^= 1; return b }, testKey, now, ErrBadSeal},
		{"kind changed", func() []byte { b := sealed(); b[1] = byte(KindJoin | KindSealed); return b }, testKey, now, ErrBadSeal},
		{"MAC changed", func() []byte { b := sealed(); b[len(b)-1] ^= 1; return b }, testKey, now, ErrBadSeal},
		{"timestamp changed", func() []byte { b := sealed(); b[len(b)-SealSize+7] ^= 1; return b }, testKey, now, ErrBadSeal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAuthenticator(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			body, err := a.Open(tt.msg(), tt.at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
			if err != nil {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("%v does not wrap ErrUnauthenticated", err)
				}
				return
			}
			c, err := DecodeControl(body)
			if err != nil || c.Cmd != CmdDrain {
				t.Fatalf("body decodes as %+v, %v", c, err)
			}
		})
	}
}

func TestOpenRefusesReplay(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, err := NewAuthenticator(testKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := a.Seal(AppendControl(nil, 9, Control{Cmd: CmdBurn, Fraction: 0.5}), now)
	if _, err := a.Open(msg, now); err != nil {
		t.Fatalf("first: %v", err)
	}
	if _, err := a.Open(msg, now.Add(time.Second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("second: %v, want ErrReplay", err)
	}
	// The same command sealed again is a new message.
	again := a.Seal(AppendControl(nil, 9, Control{Cmd: CmdBurn, Fraction: 0.5}), now.Add(time.Millisecond))
	if _, err := a.Open(again, now.Add(time.Second)); err != nil {
		t.Fatalf("resealed: %v", err)
	}
}

func TestNewAuthenticatorShortKey(t *testing.T) {
	if _, err := NewAuthenticator(testKey[:MinKeySize-1]); err == nil {
		t.Fatal("a 31-byte key was taken")
	}
}

func TestReplayCacheBound(t *testing.T) {
	const window = int64(SealWindow)
	c := NewReplayCache(2)
	mac := func(b byte) MAC { return MAC{b} }
	if err := c.Add(mac(1), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(mac(2), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(mac(3), 0, 1); !errors.Is(err, ErrReplayFull) {
		t.Fatalf("third within the window: %v, want ErrReplayFull", err)
	}
	// Once the first two have left the window they are forgotten.
	if err := c.Add(mac(3), window+1, window+1); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if n := c.Len(); n != 1 {
		t.Fatalf("Len %d after the sweep, want 1", n)
	}
	if err := c.Add(mac(3), window+1, window+2); !errors.Is(err, ErrReplay) {
		t.Fatalf("again: %v, want ErrReplay", err)
	}
}

func TestControlRoundTrip(t *testing.T) {
	for _, c := range []Control{{Cmd: CmdDrain}, {Cmd: CmdUndrain}, {Cmd: CmdBurn, Fraction: 0.25}, {Cmd: CmdBurn}} {
		for _, kind := range []Kind{KindControl, KindControlReply} {
			b := appendControl(nil, kind, 3, c)
			h, err := ParseHeader(b)
			if err != nil || h.Kind != kind || h.ID != 3 {
				t.Fatalf("%+v: header %+v, %v", c, h, err)
			}
			got, err := DecodeControl(b[HeaderSize:])
			if err != nil || got != c {
				t.Fatalf("%+v decodes as %+v, %v", c, got, err)
			}
		}
	}
}

func TestDecodeControlRefuses(t *testing.T) {
	tests := []struct {
		name string
		c    Control
		frac bool
		want Code
	}{
		{"no cmd", Control{}, false, CodeMissingField},
		{"unknown", Control{Cmd: "reboot"}, false, CodeUnexpected},
		{"burn without fraction", Control{Cmd: CmdBurn}, false, CodeSyntax},
		{"burn over 1", Control{Cmd: CmdBurn, Fraction: 1.5}, true, CodeSyntax},
		{"burn under 0", Control{Cmd: CmdBurn, Fraction: -0.1}, true, CodeSyntax},
		{"drain with fraction", Control{Cmd: CmdDrain, Fraction: 0.1}, true, CodeSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.check(tt.frac)
			if AsError(err).Code != tt.want {
				t.Fatalf("check: %v, want code %d", err, tt.want)
			}
		})
	}
}

// TestControlFits: every answer to a control command, and a sealed join
// ack, keeps to the amplification bound for the smallest message it
// answers.
func TestControlFits(t *testing.T) {
	for _, c := range []Control{{Cmd: CmdDrain}, {Cmd: CmdUndrain}, {Cmd: CmdBurn, Fraction: 0.123456789}} {
		req := AppendControl(nil, 1, c)
		reply := Seal(AppendControlReply(nil, 1, c), testKey, time.Now())
		if !Fits(len(reply), len(req)) {
			t.Errorf("%s: a sealed reply of %d bytes to %d", c.Cmd, len(reply), len(req))
		}
		e := AppendBounded(nil, len(req), false, 1, Reply{Err: Errorf(CodeSyntax, "syntax error: burn takes a fraction from 0 to 1")})
		if !Fits(len(e), len(req)) {
			t.Errorf("%s: an error of %d bytes to %d", c.Cmd, len(e), len(req))
		}
	}
	join := AppendJoin(nil, 1, Join{CalcPort: 1})
	if ack := Seal(AppendJoinAck(nil, 1), testKey, time.Now()); !Fits(len(ack), len(join)) {
		t.Errorf("a sealed join ack of %d bytes to a join of %d", len(ack), len(join))
	}
}

func TestAccept(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	keyed, err := NewAuthenticator(testKey)
	if err != nil {
		t.Fatal(err)
	}
	plain := func() []byte { return AppendControl(nil, 1, Control{Cmd: CmdDrain}) }
	sealed := func() []byte { return Seal(plain(), testKey, now) }
	forged := func() []byte { return Seal(plain(), bytes.Repeat([]byte{1}, MinKeySize), now) }
	tests := []struct {
		name    string
		a       *Authenticator
		msg     func() []byte
		trusted bool
		ok      bool
	}{
		{"no key, plain, untrusted", nil, plain, false, true},
		{"no key, sealed, untrusted", nil, sealed, false, true},
		{"no key, forged seal", nil, forged, false, true},
		{"no key, truncated seal", nil, func() []byte { b := plain(); b[1] |= byte(KindSealed); return b }, false, false},
		{"key, plain, trusted", keyed, plain, true, true},
		{"key, plain, untrusted", keyed, plain, false, false},
		{"key, sealed, untrusted", keyed, sealed, false, true},
		{"key, forged, untrusted", keyed, forged, false, false},
		{"key, forged, trusted", keyed, forged, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := tt.a.Accept(tt.msg(), tt.trusted, now)
			if (err == nil) != tt.ok {
				t.Fatalf("Accept: %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("%v does not wrap ErrUnauthenticated", err)
				}
				return
			}
			if c, err := DecodeControl(body); err != nil || c.Cmd != CmdDrain {
				t.Fatalf("body %x decodes as %+v, %v", body, c, err)
			}
		})
	}
}
