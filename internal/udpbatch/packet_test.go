package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// wrapped is a net.PacketConn that is not a *net.UDPConn: what a wrapper
// that counts or filters, or a test double, hands to the batch calls.
type wrapped struct{ net.PacketConn }

// TestAnyPacketConn: a socket that is not a *net.UDPConn takes the
// portable path, one datagram per call, both ways, with the same
// addresses the batch path gives; the kernel has no drop count for it.
func TestAnyPacketConn(t *testing.T) {
	a, b := listen(t, "udp", ":0"), listen(t, "udp4", "127.0.0.1:0")
	wa := wrapped{a}
	w := NewWriter(wa, Options{})
	if _, ok := w.batchWriter.(packetWriter); !ok {
		t.Fatalf("a wrapped socket got a %T, want the portable writer", w.batchWriter)
	}
	out := []Message{{Buf: []byte("one"), Addr: loopback(b)}, {Buf: []byte("two"), Addr: loopback(b)}}
	if n, err := w.WriteBatch(out); n != 2 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	got := readAll(t, b, NewReader(b, Options{}), 2)
	if string(got[0].Buf)+string(got[1].Buf) != "onetwo" {
		t.Fatalf("got %q and %q", got[0].Buf, got[1].Buf)
	}
	// The answer goes back to where the datagrams came from, and is read
	// through the wrapper with the sender's address in plain IPv4 form.
	if err := WriteTo(b, []byte("back"), got[0].Addr); err != nil {
		t.Fatal(err)
	}
	r := NewReader(wa, Options{MaxSize: 2})
	back := readAll(t, a, r, 1)
	if string(back[0].Buf) != "bac" || back[0].Addr != loopback(b) {
		t.Fatalf("read %q from %v, want %q (cut to MaxSize+1) from %v", back[0].Buf, back[0].Addr, "bac", loopback(b))
	}
	if _, err := Drops(wa); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Drops of a wrapped socket: %v, want ErrUnsupported", err)
	}
}

func TestAddrPort(t *testing.T) {
	for _, tt := range []struct {
		in   net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 7}, "10.0.0.1:7"},
		{&net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 7, Zone: "3"}, "[fe80::1%3]:7"},
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 8}, "10.0.0.2:8"},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unixgram"}, "invalid AddrPort"},
		{nil, "invalid AddrPort"},
	} {
		if got := AddrPort(tt.in); got.String() != tt.want {
			t.Errorf("AddrPort(%v) = %v, want %s", tt.in, got, tt.want)
		}
	}
	if AddrPort(nil) != (netip.AddrPort{}) {
		t.Error("AddrPort(nil) is not the zero AddrPort")
	}
}

// TestReadReady: ReadReady returns what has come without waiting for
// more, on the batch path and the portable one alike.
func TestReadReady(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrap), func(t *testing.T) {
			rc := listen(t, "udp4", "127.0.0.1:0")
			var conn net.PacketConn = rc
			if wrap {
				conn = wrapped{rc}
			}
			r := NewReader(conn, Options{})
			ms := make([]Message, 8)
			start := time.Now()
			if n, err := r.ReadReady(ms); n != 0 || err != nil {
				t.Fatalf("ReadReady on an empty socket = %d, %v", n, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("ReadReady on an empty socket took %v", d)
			}
			w := NewWriter(listen(t, "udp4", "127.0.0.1:0"), Options{})
			out := []Message{{Buf: []byte("a"), Addr: loopback(rc)}, {Buf: []byte("b"), Addr: loopback(rc)}}
			if n, err := w.WriteBatch(out); n != 2 || err != nil {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			got := 0
			deadline := time.Now().Add(5 * time.Second)
			for got < 2 && time.Now().Before(deadline) {
				n, err := r.ReadReady(ms)
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
			if got != 2 {
				t.Fatalf("ReadReady found %d of 2 datagrams", got)
			}
		})
	}
}
