package udpproxy_test

import (
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/udpbatch"
	"github.com/discal/discal/udpproxy"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRxOverflowCounted overflows the proxy's client socket on purpose: a
// small receive queue, filled before the proxy reads anything. Every
// datagram sent must show in the proxy's drop counts, the ones the kernel
// threw away as rx_overflow, in Stats, the stats text and the metrics.
func TestRxOverflowCounted(t *testing.T) {
	p, err := udpproxy.New(udpproxy.Config{Servers: []udpproxy.ServerAddr{blackHole(t)}, Logger: discaltest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadBuffer(4096); err != nil { // the kernel's floor is about this
		t.Fatal(err)
	}
	// Fill the queue before Serve reads: every datagram is a header's
	// first byte, which the proxy drops as short, if it reads it at all.
	const sent = 2000
	sender, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	for range sent {
		if _, err := sender.Write([]byte{codec.Magic}); err != nil {
			t.Fatal(err)
		}
	}
	discaltest.ServeProxy(t, p, conn)
	dropped := func() (all, rx uint64) {
		st := p.Stats()
		for _, n := range st.Drops {
			all += n
		}
		return all, st.Drops["rx_overflow"]
	}
	eventually.True(t, 5*time.Second, "every datagram read or counted", func() bool { all, _ := dropped(); return all >= sent })
	all, rx := dropped()
	t.Logf("sent %d, dropped %d, of them by the kernel %d", sent, all, rx)
	if all != sent || rx == 0 || rx == sent {
		t.Fatalf("sent %d, counted %d dropped, %d of them rx_overflow: want all counted, some by the kernel and some read", sent, all, rx)
	}
	if b := p.Stats().RxBuffers; b+rx != sent {
		t.Errorf("buffers read %d + dropped %d != the %d datagrams sent, one buffer each", b, rx, sent)
	}

	text := string(exchange(t, conn.LocalAddr().(*net.UDPAddr), []byte("stats\n")))
	m := regexp.MustCompile(` dropped=(\d+) `).FindStringSubmatch(text)
	if m == nil || m[1] != strconv.Itoa(sent) {
		t.Errorf("stats text says %q, want dropped=%d", m, sent)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collector())
	found := false
	for _, x := range gather(t, reg)["discal_proxy_drops_total"] {
		if label(x, "reason") == "rx_overflow" {
			found = true
			if v := x.GetCounter().GetValue(); v != float64(rx) {
				t.Errorf("discal_proxy_drops_total{reason=rx_overflow} = %v, want %d", v, rx)
			}
		}
	}
	if !found {
		t.Error("no discal_proxy_drops_total{reason=rx_overflow}")
	}
}

// TestRxOverflowCountedGSO: the same, with the flood sent in UDP GSO
// batches while the proxy serves, as the bench sends. The proxy's socket
// takes each batch whole (GRO), and the kernel counts a batch it throws
// away once: the buffers read (rx_buffers) plus those dropped
// (rx_overflow) are the batches sent, and every datagram of the batches
// read is counted by the proxy.
func TestRxOverflowCountedGSO(t *testing.T) {
	p, err := udpproxy.New(udpproxy.Config{Servers: []udpproxy.ServerAddr{blackHole(t)}, Logger: discaltest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	discaltest.ServeProxy(t, p, conn)
	eventually.True(t, 5*time.Second, "the proxy to serve", func() bool { return p.Addr() != nil })
	if err := conn.SetReadBuffer(4096); err != nil { // after Serve's readers asked for a large one
		t.Fatal(err)
	}
	sender, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	w := udpbatch.NewWriter(sender, udpbatch.Options{})
	const batches, per = 200, 64
	out := make([]udpbatch.Message, per)
	for i := range out {
		out[i] = udpbatch.Message{Buf: []byte{codec.Magic}, Addr: conn.LocalAddr().(*net.UDPAddr).AddrPort()}
	}
	for range batches {
		if n, err := w.WriteBatch(out); n != per || err != nil {
			t.Fatalf("WriteBatch = %d, %v", n, err)
		}
	}
	// A buffer is counted when it is read, its datagrams as the reader
	// handles them after: wait for both (a full run under load once saw
	// 109 buffers read and the datagrams of 107 handled).
	eventually.True(t, 5*time.Second, "every batch read or counted, and every datagram read handled", func() bool {
		st := p.Stats()
		return st.RxBuffers+st.Drops["rx_overflow"] >= batches && st.Drops["short"] >= st.RxBuffers*per
	})
	st := p.Stats()
	t.Logf("sent %d datagrams in %d batches; read %d buffers, %d datagrams (dropped as short); the kernel dropped %d buffers",
		batches*per, batches, st.RxBuffers, st.Drops["short"], st.Drops["rx_overflow"])
	if st.RxBuffers+st.Drops["rx_overflow"] != batches || st.Drops["rx_overflow"] == 0 {
		t.Fatalf("buffers read %d + dropped %d, want the %d batches sent, some dropped", st.RxBuffers, st.Drops["rx_overflow"], batches)
	}
	if st.Drops["short"] != st.RxBuffers*per {
		t.Fatalf("%d datagrams counted of %d buffers read, want %d each", st.Drops["short"], st.RxBuffers, per)
	}
}
