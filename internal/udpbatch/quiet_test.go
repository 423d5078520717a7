package udpbatch

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
)

func listenQuiet(t *testing.T, addr string) *Quiet {
	t.Helper()
	var la *net.UDPAddr
	if addr != "" {
		la = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	}
	q, err := ListenQuiet(la, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// readQuiet reads a Quiet socket until want datagrams have come.
func readQuiet(t *testing.T, q *Quiet, want int) []Message {
	t.Helper()
	var got []Message
	ms := make([]Message, 16)
	eventually.True(t, 5*time.Second, "the datagrams to arrive", func() bool {
		n, err := q.ReadReady(ms)
		if err != nil {
			t.Fatalf("ReadReady: %v", err)
		}
		for _, m := range ms[:n] {
			got = append(got, Message{Buf: bytes.Clone(m.Buf), Addr: m.Addr})
		}
		return len(got) >= want
	})
	return got
}

// TestQuiet: a Quiet socket sends and receives in batches, with the
// addresses an ordinary socket gives, bound where asked or everywhere;
// ReadReady returns at once when nothing has come.
func TestQuiet(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", ""} {
		t.Run("at "+addr, func(t *testing.T) {
			q, peer := listenQuiet(t, addr), listen(t, "udp4", "127.0.0.1:0")
			port := q.LocalAddr().(*net.UDPAddr).Port
			if port == 0 {
				t.Fatalf("LocalAddr %v has no port", q.LocalAddr())
			}
			start := time.Now()
			if n, err := q.ReadReady(make([]Message, 4)); n != 0 || err != nil {
				t.Fatalf("ReadReady with nothing sent = %d, %v; want 0, nil", n, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("ReadReady with nothing sent took %v: it waited", d)
			}
			out := []Message{{Buf: []byte("one"), Addr: loopback(peer)}, {Buf: []byte("two"), Addr: loopback(peer)}}
			if n, err := q.WriteBatch(out); n != 2 || err != nil {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			got := readAll(t, peer, NewReader(peer, Options{}), 2)
			if string(got[0].Buf)+string(got[1].Buf) != "onetwo" || got[0].Addr.Port() != uint16(port) {
				t.Fatalf("the peer read %q, %q from %v; want one, two from port %d", got[0].Buf, got[1].Buf, got[0].Addr, port)
			}
			if err := WriteTo(peer, []byte("back"), got[0].Addr); err != nil {
				t.Fatal(err)
			}
			back := readQuiet(t, q, 1)
			if string(back[0].Buf) != "back" || back[0].Addr != loopback(peer) {
				t.Fatalf("read %q from %v, want back from %v", back[0].Buf, back[0].Addr, loopback(peer))
			}
		})
	}
}

// TestQuietClose: once closed, reads and writes say net.ErrClosed, and so
// does a second Close.
func TestQuietClose(t *testing.T) {
	q, peer := listenQuiet(t, "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.ReadReady(make([]Message, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadReady after Close: %v, want net.ErrClosed", err)
	}
	if _, err := q.WriteBatch([]Message{{Buf: []byte("x"), Addr: loopback(peer)}}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteBatch after Close: %v, want net.ErrClosed", err)
	}
	if err := q.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}
