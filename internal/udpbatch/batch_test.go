package udpbatch

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func listen(t testing.TB, network, addr string) *net.UDPConn {
	t.Helper()
	a, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP(network, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func loopback(c *net.UDPConn) netip.AddrPort {
	return netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", c.LocalAddr().(*net.UDPAddr).Port))
}

// readAll reads until want datagrams have come, failing after 5s.
func readAll(t testing.TB, c *net.UDPConn, r *Reader, want int) []Message {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []Message
	ms := make([]Message, 16)
	for len(got) < want {
		n, err := r.ReadBatch(ms)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), want, err)
		}
		for _, m := range ms[:n] {
			got = append(got, Message{Buf: bytes.Clone(m.Buf), Addr: m.Addr})
		}
	}
	return got
}

// TestRoundTrip sends a batch mixing sizes and receivers from an IPv4
// socket and from a dual-stack one: every datagram arrives whole, exactly
// once, with its sender's address in plain IPv4 form, and datagrams to one
// receiver keep their order within each size.
func TestRoundTrip(t *testing.T) {
	laddr := map[string]string{"udp4": "127.0.0.1:0", "udp": ":0"}
	for _, from := range []string{"udp4", "udp"} {
		for _, to := range []string{"udp4", "udp"} {
			t.Run(from+"->"+to, func(t *testing.T) {
				sender := listen(t, from, laddr[from])
				r1, r2 := listen(t, to, laddr[to]), listen(t, to, laddr[to])
				w := NewWriter(sender, Options{Batch: 16})
				var out []Message
				for i := range 150 {
					dst := r1
					if i%3 == 0 {
						dst = r2
					}
					size := 40 + 8*(i%2) // two sizes, so GSO groups interleave
					b := bytes.Repeat([]byte{'.'}, size)
					copy(b, fmt.Sprintf("%03d", i))
					out = append(out, Message{Buf: b, Addr: loopback(dst)})
				}
				if n, err := w.WriteBatch(out); n != len(out) || err != nil {
					t.Fatalf("WriteBatch = %d, %v", n, err)
				}
				want1, want2 := map[string]bool{}, map[string]bool{}
				for i, m := range out {
					if i%3 == 0 {
						want2[string(m.Buf)] = true
					} else {
						want1[string(m.Buf)] = true
					}
				}
				for _, rc := range []struct {
					c    *net.UDPConn
					want map[string]bool
				}{{r1, want1}, {r2, want2}} {
					got := readAll(t, rc.c, NewReader(rc.c, Options{MaxSize: 512}), len(rc.want))
					last := map[int]string{}
					for _, m := range got {
						if !rc.want[string(m.Buf)] {
							t.Fatalf("unexpected or repeated datagram %q", m.Buf)
						}
						delete(rc.want, string(m.Buf))
						if m.Addr.Port() != uint16(sender.LocalAddr().(*net.UDPAddr).Port) || !m.Addr.Addr().Is4() {
							t.Fatalf("sender address %v", m.Addr)
						}
						if prev := last[len(m.Buf)]; prev != "" && string(m.Buf[:3]) < prev {
							t.Fatalf("%s arrived after %s", m.Buf[:3], prev)
						}
						last[len(m.Buf)] = string(m.Buf[:3])
					}
				}
			})
		}
	}
}

func TestOversizedAndConnected(t *testing.T) {
	receiver := listen(t, "udp4", "127.0.0.1:0")
	conn, err := net.DialUDP("udp", nil, receiver.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := NewWriter(conn, Options{})
	big := bytes.Repeat([]byte("x"), 100)
	// No Addr: the connected peer. Equal sizes, so they go as one GSO send.
	out := []Message{{Buf: big}, {Buf: big}, {Buf: []byte("small")}}
	if n, err := w.WriteBatch(out); n != 3 || err != nil {
		t.Fatalf("connected WriteBatch = %d, %v", n, err)
	}
	got := readAll(t, receiver, NewReader(receiver, Options{MaxSize: 10}), 3)
	long := 0
	for _, m := range got {
		switch len(m.Buf) {
		case 11:
			long++ // cut to MaxSize+1: the caller can tell it was too long
		case 5:
		default:
			t.Fatalf("datagram of %d bytes", len(m.Buf))
		}
	}
	if long != 2 {
		t.Fatalf("%d oversized datagrams reported, want 2", long)
	}
}

func TestUnreachableDoesNotStopTheBatch(t *testing.T) {
	sender := listen(t, "udp4", "127.0.0.1:0")
	receiver := listen(t, "udp4", "127.0.0.1:0")
	out := []Message{
		{Buf: []byte("a"), Addr: loopback(receiver)},
		{Buf: []byte("b"), Addr: netip.MustParseAddrPort("[2001:db8::1]:9")}, // no IPv6 on an IPv4 socket
		{Buf: []byte("c"), Addr: loopback(receiver)},
	}
	if n, err := NewWriter(sender, Options{}).WriteBatch(out); n != 3 || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want all three handled", n, err)
	}
	if got := readAll(t, receiver, NewReader(receiver, Options{}), 2); len(got) != 2 {
		t.Fatalf("received %d", len(got))
	}
}

func BenchmarkWriteReadBatch(b *testing.B) {
	sender := listen(b, "udp4", "127.0.0.1:0")
	receiver := listen(b, "udp4", "127.0.0.1:0")
	w, r := NewWriter(sender, Options{Batch: 32}), NewReader(receiver, Options{Batch: 32, MaxSize: 512})
	out, in := make([]Message, 32), make([]Message, 32)
	for i := range out {
		out[i] = Message{Buf: make([]byte, 40), Addr: loopback(receiver)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.WriteBatch(out); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(out); {
			n, err := r.ReadBatch(in)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(out)), "ns/datagram")
}
