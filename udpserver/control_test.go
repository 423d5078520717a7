package udpserver

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
)

var (
	testKey  = bytes.Repeat([]byte{0x5a}, codec.MinKeySize)
	otherKey = bytes.Repeat([]byte{0xa5}, codec.MinKeySize)
)

// untrusted makes loopback need a seal too. The tests run on 127.0.0.1,
// which the server trusts without one; turning that off stands in for a
// host across the network, without root or network namespaces (e2e's
// TestControlKeyNetns covers real hosts and forged sources).
func untrusted(s *Server) { s.noLoopback = true }

func sealed(key []byte, id uint64, c codec.Control, at time.Time) []byte {
	return codec.Seal(codec.AppendControl(nil, id, c), key, at)
}

// answered sends pkt, then a status query, and reports whether pkt got an
// answer of its own: the status port reads in order, so an answer to pkt
// would come before the status line. No waiting for silence.
func answered(t *testing.T, c *net.UDPConn, pkt []byte) (reply []byte, ok bool) {
	t.Helper()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	first := exchange(t, c, []byte("status"))
	if strings.HasPrefix(string(first), "server=") {
		return nil, false
	}
	// The status line follows; read it, so that the next exchange gets
	// its own answer.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, codec.MaxDatagram)); err != nil {
		t.Fatalf("no status line after %x: %v", first, err)
	}
	return first, true
}

// TestControlKeyObeysSealed: with a key, a sealed command from a host
// that is not loopback is obeyed and confirmed with a control reply that
// carries its ID.
func TestControlKeyObeysSealed(t *testing.T) {
	ts := start(t, Config{Quiet: true, ControlKey: testKey}, untrusted)
	c := dial(t, ts.status)
	tests := []struct {
		ctl   codec.Control
		check func() bool
	}{
		{codec.Control{Cmd: codec.CmdDrain}, ts.Draining},
		{codec.Control{Cmd: codec.CmdUndrain}, func() bool { return !ts.Draining() }},
		{codec.Control{Cmd: codec.CmdBurn, Fraction: 0.25}, func() bool { return ts.Burn() == 0.25 }},
		{codec.Control{Cmd: codec.CmdBurn, Fraction: 0}, func() bool { return ts.Burn() == 0 }},
	}
	for i, tt := range tests {
		id := uint64(100 + i)
		reply := exchange(t, c, sealed(testKey, id, tt.ctl, time.Now()))
		h, err := codec.ParseHeader(reply)
		if err != nil || h.Kind != codec.KindControlReply || h.ID != id {
			t.Fatalf("%s: answer %x (%v), want a control reply with ID %d", tt.ctl.Cmd, reply, err, id)
		}
		if got, err := codec.DecodeControl(reply[codec.HeaderSize:]); err != nil || got != tt.ctl {
			t.Fatalf("%s: reply says %+v, %v", tt.ctl.Cmd, got, err)
		}
		if !tt.check() {
			t.Fatalf("%s: confirmed but not obeyed", tt.ctl.Cmd)
		}
	}
	if n := ts.Stats().Unauthenticated; n != 0 {
		t.Fatalf("%d refused, want 0", n)
	}
	// A sealed burn out of range is answered with the text form's error.
	reply := exchange(t, c, sealed(testKey, 9, codec.Control{Cmd: codec.CmdBurn, Fraction: 2}, time.Now()))
	if h, err := codec.ParseHeader(reply); err != nil || h.Kind != codec.KindReply {
		t.Fatalf("burn 2: answer %x, want an error reply", reply)
	}
	if r, err := codec.DecodeReply(reply[codec.HeaderSize:]); err != nil || r.Err == nil || r.Err.Code != codec.CodeSyntax {
		t.Fatalf("burn 2: %+v, %v; want a syntax error", r, err)
	}
}

// TestControlKeyRefuses: with a key, a command that is unsealed, sealed
// under another key, replayed or out of the window is neither obeyed nor
// answered, and is counted.
func TestControlKeyRefuses(t *testing.T) {
	ts := start(t, Config{Quiet: true, ControlKey: testKey}, untrusted)
	c := dial(t, ts.status)
	drain := codec.Control{Cmd: codec.CmdDrain}
	replayed := sealed(testKey, 1, codec.Control{Cmd: codec.CmdUndrain}, time.Now())
	if _, ok := answered(t, c, replayed); !ok {
		t.Fatal("the genuine undrain was not answered")
	}
	tests := []struct {
		name string
		pkt  []byte
	}{
		{"unsealed", codec.AppendControl(nil, 2, drain)},
		{"text", []byte("drain\n")},
		{"text burn", []byte("burn 1")},
		{"another key", sealed(otherKey, 3, drain, time.Now())},
		{"expired", sealed(testKey, 4, drain, time.Now().Add(-codec.SealWindow-time.Second))},
		{"from the future", sealed(testKey, 5, drain, time.Now().Add(codec.SealWindow+time.Second))},
		{"replayed", replayed},
		{"seal cut short", sealed(testKey, 6, drain, time.Now())[:40]},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if reply, ok := answered(t, c, tt.pkt); ok {
				t.Fatalf("answered with %q", reply)
			}
			if ts.Draining() || ts.Burn() != 0 {
				t.Fatal("obeyed")
			}
			if n := ts.Stats().Unauthenticated; n != uint64(i+1) {
				t.Fatalf("%d counted, want %d", n, i+1)
			}
		})
	}
	if line := string(exchange(t, c, []byte("status"))); !strings.Contains(line, " unauthenticated=8\n") {
		t.Fatalf("status line %q does not count them", line)
	}
}

// TestControlLoopbackAndNoKey: loopback needs no seal, key or not; without
// a key, every allowed source is obeyed, sealed or not, as before.
func TestControlLoopbackAndNoKey(t *testing.T) {
	tests := []struct {
		name    string
		key     []byte
		prepare []func(*Server)
	}{
		{"key, loopback", testKey, nil},
		{"no key, loopback", nil, nil},
		{"no key, another host", nil, []func(*Server){untrusted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, Config{Quiet: true, ControlKey: tt.key}, tt.prepare...)
			c := dial(t, ts.status)
			if got := string(exchange(t, c, []byte("drain"))); got != "ok: drain\n" || !ts.Draining() {
				t.Fatalf("text drain: %q, draining %v", got, ts.Draining())
			}
			reply := exchange(t, c, codec.AppendControl(nil, 7, codec.Control{Cmd: codec.CmdUndrain}))
			if h, err := codec.ParseHeader(reply); err != nil || h.Kind != codec.KindControlReply || ts.Draining() {
				t.Fatalf("binary undrain: %x, draining %v", reply, ts.Draining())
			}
			// A seal under any key: checked only by a server with one.
			reply, ok := answered(t, c, sealed(otherKey, 8, codec.Control{Cmd: codec.CmdDrain}, time.Now()))
			h, _ := codec.ParseHeader(reply)
			if tt.key == nil && (!ok || h.Kind != codec.KindControlReply || !ts.Draining()) {
				t.Fatalf("no key: a sealed drain got %x, draining %v", reply, ts.Draining())
			}
			if tt.key != nil && (ok || ts.Draining() || ts.Stats().Unauthenticated != 1) {
				t.Fatalf("key: a drain sealed under another key got %x, draining %v", reply, ts.Draining())
			}
		})
	}
}

// TestControlKeyJoin: a server with a key seals its joins, and takes a
// join ack from a host that is not loopback only sealed.
func TestControlKeyJoin(t *testing.T) {
	proxy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	ts := start(t, Config{Quiet: true, ControlKey: testKey, Join: []string{proxy.LocalAddr().String()}, JoinInterval: time.Hour}, untrusted)
	buf := make([]byte, codec.MaxDatagram)
	_ = proxy.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := proxy.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	h, err := codec.ParseHeader(buf[:n])
	if err != nil || h.Kind != codec.KindJoin|codec.KindSealed {
		t.Fatalf("join %x: want a sealed join", buf[:n])
	}
	body, _, _, err := codec.Check(buf[:n], testKey, time.Now())
	if err != nil {
		t.Fatalf("the join's seal: %v", err)
	}
	if j, err := codec.DecodeJoin(body); err != nil || int(j.CalcPort) != ts.calc.Port {
		t.Fatalf("join %+v, %v", j, err)
	}
	for _, ack := range [][]byte{codec.AppendJoinAck(nil, h.ID), codec.Seal(codec.AppendJoinAck(nil, h.ID), otherKey, time.Now())} {
		before := ts.Stats().Unauthenticated
		if _, err := proxy.WriteToUDPAddrPort(ack, from); err != nil {
			t.Fatal(err)
		}
		eventually.True(t, 5*time.Second, "a bad ack was not counted", func() bool { return ts.Stats().Unauthenticated == before+1 })
		if ts.Joined()[proxy.LocalAddr().String()] {
			t.Fatalf("ack %x joined", ack)
		}
	}
	if _, err := proxy.WriteToUDPAddrPort(codec.Seal(codec.AppendJoinAck(nil, h.ID), testKey, time.Now()), from); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the sealed ack did not join", func() bool { return ts.Joined()[proxy.LocalAddr().String()] })
}

func TestControlKeyTooShort(t *testing.T) {
	if _, err := New(Config{ControlKey: testKey[:codec.MinKeySize-1]}); err == nil {
		t.Fatal("a 31-byte key was taken")
	}
}
