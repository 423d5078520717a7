package udpproxy_test

// Hostile input: garbage, forged replies, floods from one source, and
// questions built to make the proxy amplify.

import (
	"context"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
)

// TestGarbageStopsNothing throws malformed datagrams at the proxy; requests
// sent among them are all answered right, and the garbage is counted.
func TestGarbageStopsNothing(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 2})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{Timeout: time.Second})
	junk, err := net.DialUDP("udp", nil, c.ProxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	r := rand.New(rand.NewPCG(5, 6))
	good := codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(2)})
	for i := range 3000 {
		var pkt []byte
		switch i % 5 {
		case 0:
			pkt = make([]byte, r.IntN(30))
			for j := range pkt {
				pkt[j] = byte(r.UintN(256)) | 0x80 // never printable: not text
			}
		case 1:
			pkt = good[:r.IntN(codec.HeaderSize)]
		case 2:
			pkt = codec.AppendHeader(nil, codec.KindReply, r.Uint64())
		case 3:
			pkt = append([]byte{0xD2}, good[1:]...)
		case 4:
			pkt = codec.AppendStatusQuery(nil, r.Uint64())
		}
		_, _ = junk.Write(pkt)
		if i%100 == 0 {
			req := randomRequest(r)
			rep, err := cl.Do(context.Background(), req)
			if err := checkAnswer(req, rep, err); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The proxy reads datagrams in order per socket, but from several
	// readers: wait until it has counted what it read.
	eventually.True(t, 5*time.Second, "garbage counted", func() bool {
		d := c.Proxy.Stats().Drops
		return d["magic"]+d["short"]+d["kind"] >= 2000
	})
}

// TestForgedRepliesNeverReachClients: replies to the proxy's server-facing
// socket from an address the request did not go to, or with IDs the proxy
// never used, are dropped and counted; the client gets only the real
// answer.
func TestForgedRepliesNeverReachClients(t *testing.T) {
	// A server that answers nothing by itself: the test sees the ID the
	// proxy used and answers by hand, from the server's own port.
	ids := make(chan uint64, 1)
	srv := discaltest.StartFake(t, discaltest.FakeConfig{Answer: func(req discaltest.Request) (codec.Reply, bool) {
		select {
		case ids <- req.ID:
		default:
		}
		return codec.Reply{}, false
	}})
	p, paddr := discaltest.StartProxy(t, udpproxy.Config{Servers: []udpproxy.ServerAddr{srv.ServerAddr()}, TryTimeout: 2 * time.Second})
	client, err := net.DialUDP("udp", nil, paddr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write(codec.AppendRequest(nil, 77, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})); err != nil {
		t.Fatal(err)
	}
	var id uint64
	select {
	case id = <-ids:
	case <-time.After(3 * time.Second):
		t.Fatal("the request never reached the server")
	}
	upstream := p.UpstreamAddr().(*net.UDPAddr)
	up := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: upstream.Port}
	lie := codec.AppendReply(nil, id, codec.Reply{Result: codec.IntNumber(666), Server: "liar"})
	// 1. The right ID from another address.
	attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	if _, err := attacker.WriteToUDP(lie, up); err != nil {
		t.Fatal(err)
	}
	// 2. Guessed IDs from the server's own address.
	for i := range 100 {
		if _, err := srv.WriteTo(codec.AppendReply(nil, id^uint64(i+1)<<7, codec.Reply{Result: codec.IntNumber(666)}), up); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 5*time.Second, "the forgeries counted", func() bool {
		d := p.Stats().Drops
		return d["forged_reply"] == 1 && d["unknown_reply"] == 100
	})
	// 3. The real answer, from the server the request went to.
	if _, err := srv.WriteTo(codec.AppendReply(nil, id, codec.Reply{Result: codec.IntNumber(42), Server: "real"}), up); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1024)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	rh, _ := codec.ParseHeader(buf[:n])
	r, err := codec.DecodeReply(buf[codec.HeaderSize:n])
	if err != nil || rh.ID != 77 || r.Server != "real" || !r.Result.Equal(codec.IntNumber(42)) {
		t.Fatalf("the client got %+v (ID %d), %v; want the real 42", r, rh.ID, err)
	}
	_ = client.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := client.Read(buf); err == nil {
		t.Fatalf("the client got a second datagram of %d bytes", n)
	}
}

// TestRateLimitPerSource: one source over its rate is shed and counted; a
// source of its own, on another address, is not held back by it.
func TestRateLimitPerSource(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 1, Proxy: udpproxy.Config{RateLimit: 50, RateBurst: 20}})
	send := func(src string, n int) (answered int) {
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, c.ProxyAddr)
		if err != nil {
			t.Skipf("cannot send from %s: %v", src, err)
		}
		defer conn.Close()
		for i := range n {
			if _, err := conn.Write(codec.AppendRequest(nil, uint64(i), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(1)})); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 1024)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := conn.Read(buf); err != nil {
				return answered
			}
			answered++
		}
	}
	// 200 at once: the burst of 20 and what the rate refills meanwhile are
	// admitted, and every one admitted is answered; the rest are shed.
	flooder := send("127.0.0.2", 200)
	st := c.Proxy.Stats()
	admitted, shed := st.Requests, st.Drops["rate_limited"]
	if admitted < 20 || admitted > 60 {
		t.Fatalf("the flooding source had %d of 200 admitted, want about its burst of 20", admitted)
	}
	if admitted+shed != 200 {
		t.Fatalf("admitted %d + shed %d != the 200 sent", admitted, shed)
	}
	if uint64(flooder) != admitted {
		t.Fatalf("the flooding source got %d answers for %d admitted requests", flooder, admitted)
	}
	if other := send("127.0.0.3", 10); other != 10 {
		t.Fatalf("another source got %d of 10 answered", other)
	}
	if again := c.Proxy.Stats().Drops["rate_limited"]; again != shed {
		t.Fatalf("the other source had %d requests shed", again-shed)
	}
}

// TestTextRepliesStaySmall: through the proxy too, a text reply is never
// more than codec.MaxAmplification times its request, and text too short
// to be a question gets no answer.
func TestTextRepliesStaySmall(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 1})
	for _, in := range []string{"xyz", "1/0", "nan+1", "1e999*1", "add"} {
		got := exchange(t, c.ProxyAddr, []byte(in))
		if len(got) > codec.MaxAmplification*len(in) {
			t.Errorf("%q answered with %d bytes: %q", in, len(got), got)
		}
	}
	conn, err := net.DialUDP("udp", nil, c.ProxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("1+"))
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 100)); err == nil {
		t.Fatalf("a 2-byte datagram got %d bytes back", n)
	}
}
