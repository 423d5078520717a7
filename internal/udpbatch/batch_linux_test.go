package udpbatch

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestManyBatchesWithoutGSO repeats batches through one Writer, with GSO
// and with it turned off as on a kernel that refuses it, and checks that
// everything arrives every time.
func TestManyBatchesWithoutGSO(t *testing.T) {
	for _, gso := range []bool{true, false} {
		sender := listen(t, "udp4", "127.0.0.1:0")
		receiver := listen(t, "udp4", "127.0.0.1:0")
		w := NewWriter(sender, Options{Batch: 8})
		w.batchWriter.(*mmsgWriter).gso.Store(gso)
		r := NewReader(receiver, Options{})
		for round := range 20 {
			out := make([]Message, 1+round%13)
			for i := range out {
				out[i] = Message{Buf: bytes.Repeat([]byte{byte('a' + i%3)}, 10+i%3), Addr: loopback(receiver)}
			}
			if n, err := w.WriteBatch(out); n != len(out) || err != nil {
				t.Fatalf("gso %v round %d: WriteBatch = %d, %v", gso, round, n, err)
			}
			if got := readAll(t, receiver, r, len(out)); len(got) != len(out) {
				t.Fatalf("gso %v round %d: got %d", gso, round, len(got))
			}
		}
	}
}

// BenchmarkSendCost times sending alone, per datagram, three ways: a plain
// write per datagram, sendmmsg with a header per datagram, and sendmmsg
// with UDP GSO to a GRO-enabled receiver. The receiver is drained between
// rounds with the clock stopped. On loopback the sender's time includes
// delivering into the receiver's queue, which is most of a send's cost.
//
//	go test -run xxx -bench SendCost ./internal/udpbatch
func BenchmarkSendCost(b *testing.B) {
	const n = 64
	for _, mode := range []string{"plain", "sendmmsg", "gso"} {
		b.Run(mode, func(b *testing.B) {
			sender := listen(b, "udp4", "127.0.0.1:0")
			receiver := listen(b, "udp4", "127.0.0.1:0")
			r := NewReader(receiver, Options{MaxSize: 512}) // asks for GRO
			w := NewWriter(sender, Options{NoGSO: mode != "gso"})
			to := loopback(receiver)
			out, in := make([]Message, n), make([]Message, n)
			for i := range out {
				out[i] = Message{Buf: make([]byte, 40), Addr: to}
			}
			b.ReportAllocs()
			for b.Loop() {
				if mode == "plain" {
					for i := range out {
						if _, err := sender.WriteToUDPAddrPort(out[i].Buf, to); err != nil {
							b.Fatal(err)
						}
					}
				} else if _, err := w.WriteBatch(out); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for got := 0; got < n; {
					k, err := r.ReadBatch(in)
					if err != nil {
						b.Fatal(err)
					}
					got += k
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/datagram")
		})
	}
}

// TestDropsCountsOverflow overflows a small receive queue on purpose: every
// datagram sent is either read or counted as dropped, and some were
// dropped. A fresh socket has dropped none.
func TestDropsCountsOverflow(t *testing.T) {
	receiver := listen(t, "udp4", "127.0.0.1:0")
	sender := listen(t, "udp4", "127.0.0.1:0")
	if n, err := Drops(receiver); n != 0 || err != nil {
		t.Fatalf("a fresh socket: Drops = %d, %v", n, err)
	}
	if err := receiver.SetReadBuffer(4096); err != nil { // the kernel's floor is about this
		t.Fatal(err)
	}
	const sent = 2000
	pkt := bytes.Repeat([]byte{'x'}, 200)
	for range sent {
		if _, err := sender.WriteToUDPAddrPort(pkt, loopback(receiver)); err != nil {
			t.Fatal(err)
		}
	}
	// Read what the queue held. A read that waits 200 ms for nothing says
	// the queue is empty: loopback delivers before the send returns.
	read := 0
	buf := make([]byte, 1500)
	for {
		_ = receiver.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, _, err := receiver.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		read++
	}
	drops, err := Drops(receiver)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d, read %d, dropped %d", sent, read, drops)
	if drops == 0 || read+int(drops) != sent {
		t.Fatalf("sent %d, read %d, counted %d dropped: want every one read or counted, and some dropped", sent, read, drops)
	}
}

// TestLinkLocalZone exchanges datagrams between two network namespaces
// joined by one veth, by link-local address only: ll0 (fe80::1) in one,
// ll1 (fe80::2) in the other. A datagram read carries its sender's zone,
// the index of the interface it came in on, and an answer written to that
// address goes back out of that interface, from a socket bound to no
// device, which the kernel refuses without the zone.
func TestLinkLocalZone(t *testing.T) {
	a, b := linkLocalPair(t)
	var answerer, asker *net.UDPConn
	var ll0, ll1 *net.Interface
	inNetns(t, b, func() (err error) {
		if ll1, err = net.InterfaceByName("ll1"); err != nil {
			return err
		}
		answerer, err = net.ListenUDP("udp6", &net.UDPAddr{})
		return err
	})
	t.Cleanup(func() { answerer.Close() })
	inNetns(t, a, func() (err error) {
		if ll0, err = net.InterfaceByName("ll0"); err != nil {
			return err
		}
		asker, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("fe80::1"), Zone: "ll0"})
		return err
	})
	t.Cleanup(func() { asker.Close() })

	port := uint16(answerer.LocalAddr().(*net.UDPAddr).Port)
	to := netip.AddrPortFrom(netip.MustParseAddr("fe80::2").WithZone(strconv.Itoa(ll0.Index)), port)
	if n, err := NewWriter(asker, Options{}).WriteBatch([]Message{{Buf: []byte("ping"), Addr: to}}); n != 1 || err != nil {
		t.Fatalf("WriteBatch to %v = %d, %v", to, n, err)
	}
	got := readAll(t, answerer, NewReader(answerer, Options{}), 1)
	from := netip.MustParseAddr("fe80::1").WithZone(strconv.Itoa(ll1.Index))
	want := netip.AddrPortFrom(from, uint16(asker.LocalAddr().(*net.UDPAddr).Port))
	if len(got) != 1 || got[0].Addr != want {
		t.Fatalf("read %v, want one datagram from %v", got, want)
	}
	if n, err := NewWriter(answerer, Options{}).WriteBatch([]Message{{Buf: []byte("pong"), Addr: got[0].Addr}}); n != 1 || err != nil {
		t.Fatalf("WriteBatch back to %v = %d, %v", got[0].Addr, n, err)
	}
	back := readAll(t, asker, NewReader(asker, Options{}), 1)
	if len(back) != 1 || string(back[0].Buf) != "pong" || back[0].Addr.Addr().Zone() != strconv.Itoa(ll0.Index) {
		t.Fatalf("the answer came back as %v", back)
	}
	// Reading from a link-local peer allocates nothing once its zone is
	// known.
	r := NewReader(answerer, Options{})
	rsa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: from.As16(), Scope_id: uint32(ll1.Index)}
	if n := testing.AllocsPerRun(100, func() { _ = r.batchReader.(*mmsgReader).parseSockaddr(&rsa) }); n != 0 {
		t.Errorf("reading a link-local address: %v allocations", n)
	}
}

// linkLocalPair makes two network namespaces joined by a veth, ll0
// (fe80::1) in the first and ll1 (fe80::2) in the second, and returns their
// names. It needs root and iproute2, and skips without them.
func linkLocalPair(t *testing.T) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, for network namespaces")
	}
	var r [3]byte
	_, _ = crand.Read(r[:])
	a, b := "netpath-"+hex.EncodeToString(r[:])+"-a", "netpath-"+hex.EncodeToString(r[:])+"-b"
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %w: %s", args, err, out)
		}
		return nil
	}
	if err := ip("netns", "add", a); err != nil {
		t.Skipf("cannot make network namespaces here: %v", err)
	}
	t.Cleanup(func() { _, _ = ip("netns", "del", a), ip("netns", "del", b) })
	for _, args := range [][]string{
		{"netns", "add", b},
		{"-n", a, "link", "add", "ll0", "type", "veth", "peer", "name", "ll1", "netns", b},
		{"-n", a, "addr", "add", "fe80::1/64", "dev", "ll0", "nodad"},
		{"-n", b, "addr", "add", "fe80::2/64", "dev", "ll1", "nodad"},
		{"-n", a, "link", "set", "ll0", "up"},
		{"-n", b, "link", "set", "ll1", "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// inNetns runs fn in network namespace ns, to make sockets there: a
// socket stays in the namespace it was made in, whatever thread uses it.
// fn runs on a thread locked to a goroutine of its own and never unlocked,
// which the runtime then throws away, so no other goroutine runs in the
// namespace.
func inNetns(t *testing.T, ns string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDropsAddUpWithGSO: a sender's GSO batches overflow a small receive
// queue. Read without GRO, every datagram the kernel throws away is
// counted, one by one: datagrams read plus dropped is what was sent. With
// GRO the kernel keeps each batch whole and counts a dropped batch once:
// then the buffers read (Options.Buffers) plus those dropped are the
// batches sent.
func TestDropsAddUpWithGSO(t *testing.T) {
	for _, noGRO := range []bool{true, false} {
		t.Run(fmt.Sprintf("NoGRO=%v", noGRO), func(t *testing.T) {
			receiver := listen(t, "udp4", "127.0.0.1:0")
			if err := receiver.SetReadBuffer(4096); err != nil {
				t.Fatal(err)
			}
			// The reader sets the socket up (GRO on or off) before
			// anything arrives, as a server's does.
			var buffers atomic.Uint64
			r := NewReader(receiver, Options{NoGRO: noGRO, Buffers: &buffers})
			if err := receiver.SetReadBuffer(4096); err != nil { // the reader asks for a large one
				t.Fatal(err)
			}
			sender := listen(t, "udp4", "127.0.0.1:0")
			w := NewWriter(sender, Options{})
			const batches, per = 40, 64
			out := make([]Message, per)
			for i := range out {
				out[i] = Message{Buf: make([]byte, 40), Addr: loopback(receiver)}
			}
			for range batches {
				if n, err := w.WriteBatch(out); n != per || err != nil {
					t.Fatalf("WriteBatch = %d, %v", n, err)
				}
			}
			read := 0
			ms := make([]Message, 64)
			for {
				_ = receiver.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := r.ReadBatch(ms)
				if err != nil {
					break // the queue is empty: everything sent has arrived or been dropped
				}
				read += n
			}
			drops, err := Drops(receiver)
			if err != nil {
				t.Fatal(err)
			}
			sent := batches * per
			t.Logf("sent %d in %d batches; read %d in %d buffers, dropped %d", sent, batches, read, buffers.Load(), drops)
			if drops == 0 {
				t.Fatalf("nothing dropped: the queue did not overflow (read %d of %d)", read, sent)
			}
			if noGRO && read+int(drops) != sent {
				t.Fatalf("read %d + dropped %d = %d, want the %d sent", read, drops, read+int(drops), sent)
			}
			if b := buffers.Load(); !noGRO && b+drops != batches {
				t.Fatalf("buffers read %d + dropped %d = %d, want the %d batches sent", b, drops, b+drops, batches)
			}
		})
	}
}
