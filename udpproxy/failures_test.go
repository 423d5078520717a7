package udpproxy_test

// Servers that stop, never answer, or are too slow: every request still
// gets an answer, right or an explicit error.

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// TestServerStoppedMidRun stops one of three servers while clients keep
// sending: every request still gets the right answer, the proxy takes the
// server out of rotation, and once it is started again it gets work again.
func TestServerStoppedMidRun(t *testing.T) {
	exclusive.CPU(t)
	c := startCluster(t, discaltest.Config{Servers: 3, Proxy: udpproxy.Config{
		Poll: 20 * time.Millisecond, TryTimeout: 100 * time.Millisecond}})
	victim := c.Servers[1]
	eventually.True(t, 5*time.Second, "a first report from every server", func() bool {
		for _, b := range c.Proxy.Stats().Servers {
			if !b.HasReport {
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	answered := 0
	for i := range 4 {
		// No client retries: every request the stopped server was holding
		// must be saved by the proxy's own retry on another server.
		cl := dialClient(t, c.ProxyAddr, udpclient.Config{Timeout: 2 * time.Second, Retries: udpclient.NoRetries})
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for n := 0; n < 20000 && ctx.Err() == nil; n++ {
				req := randomRequest(r)
				rep, err := cl.Do(context.Background(), req)
				mu.Lock()
				if err := checkAnswer(req, rep, err); err != nil {
					failures = append(failures, err)
				}
				answered++
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return answered }
	eventually.True(t, 10*time.Second, "load to start", func() bool { return count() > 200 })

	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if err := victim.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the proxy to take the stopped server out", func() bool {
		return !backendByName(c.Proxy, victim.Name).Up
	})
	before := count()
	eventually.True(t, 10*time.Second, "more answers without the server", func() bool { return count() > before+500 })

	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the restarted server back in rotation", func() bool {
		return backendByName(c.Proxy, victim.Name).Up
	})
	served := victim.Running().Stats().Served
	eventually.True(t, 10*time.Second, "the restarted server to get work", func() bool {
		return victim.Running().Stats().Served > served+100
	})
	cancel()
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	st := c.Proxy.Stats()
	if st.Timeouts != 0 || st.NoServer != 0 {
		t.Errorf("clients were told timeout %d times, no server %d times", st.Timeouts, st.NoServer)
	}
	t.Logf("answered %d; proxy retries %d", count(), st.Retries)
}

// TestTimeoutAnswered sends requests to two servers that never answer: each
// is tried on both, then answered "timeout", and nothing stays pending.
// (Passive health is off here, so that both stay in rotation: see
// TestEjection for what it does with such servers.)
func TestTimeoutAnswered(t *testing.T) {
	p, addr := discaltest.StartProxy(t, udpproxy.Config{
		Servers:         []udpproxy.ServerAddr{blackHole(t), blackHole(t)},
		TryTimeout:      30 * time.Millisecond,
		MaxEjectPercent: -1,
	})
	cl := dialClient(t, addr, udpclient.Config{Timeout: 2 * time.Second, Retries: udpclient.NoRetries})
	for range 5 {
		_, err := cl.Calc(context.Background(), codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1))
		if !errors.Is(err, udpclient.ErrNoAnswer) || !errors.Is(err, codec.ErrTimeout) {
			t.Fatalf("error = %v, want no answer with the proxy's timeout", err)
		}
	}
	if got := string(exchange(t, addr, []byte("1 + 1\n"))); got != "error: timeout\n" {
		t.Fatalf("text request answered %q", got)
	}
	st := p.Stats()
	if st.Timeouts != 6 || st.Retries != 6 || st.Pending != 0 {
		t.Fatalf("timeouts %d, retries %d, pending %d; want 6, 6, 0", st.Timeouts, st.Retries, st.Pending)
	}
	for _, b := range st.Servers {
		if b.Sent != 6 || b.Timeouts != 6 || b.InFlight != 0 {
			t.Errorf("backend %s: sent %d, timeouts %d, in flight %d", b.Name, b.Sent, b.Timeouts, b.InFlight)
		}
	}
}

// TestNoServerAvailable stops every server: once the proxy has seen them
// miss their polls, requests get an immediate "no server available".
func TestNoServerAvailable(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 2, Proxy: udpproxy.Config{Poll: 10 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.Servers {
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 5*time.Second, "every server out of rotation", func() bool {
		for _, b := range c.Proxy.Stats().Servers {
			if b.Up {
				return false
			}
		}
		return true
	})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{Timeout: 2 * time.Second, Retries: udpclient.NoRetries})
	_, err := cl.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1))
	if !errors.Is(err, codec.ErrNoServer) || !errors.Is(err, udpclient.ErrNoAnswer) {
		t.Fatalf("error = %v, want no server available", err)
	}
	if got := string(exchange(t, c.ProxyAddr, []byte("2*2"))); got != "error: no server available\n" {
		t.Fatalf("text answered %q", got)
	}
	// Back up: the first answered poll puts a server back in rotation.
	if err := c.Servers[0].Restart(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "a server back", func() bool { return backendByName(c.Proxy, "s1").Up })
	if n, err := cl.Calc(ctx, codec.OpMul, codec.IntNumber(2), codec.IntNumber(21)); err != nil || !n.Equal(codec.IntNumber(42)) {
		t.Fatalf("after restart: %v, %v", n, err)
	}
}

// TestBusyWhenFull: beyond MaxPending waiting requests the proxy answers
// "busy" at once, and the waiting ones still get their own answers.
func TestBusyWhenFull(t *testing.T) {
	p, addr := discaltest.StartProxy(t, udpproxy.Config{
		Servers:    []udpproxy.ServerAddr{blackHole(t)},
		TryTimeout: 300 * time.Millisecond,
		Tries:      1,
		MaxPending: 3,
	})
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for id := uint64(1); id <= 5; id++ {
		if _, err := conn.Write(codec.AppendRequest(nil, id, codec.Request{Op: codec.OpAdd})); err != nil {
			t.Fatal(err)
		}
	}
	codes := map[uint64]codec.Code{}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	for len(codes) < 5 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(codes), err)
		}
		h, _ := codec.ParseHeader(buf[:n])
		r, err := codec.DecodeReply(buf[codec.HeaderSize:n])
		if err != nil || r.Err == nil {
			t.Fatalf("reply %+v, %v", r, err)
		}
		codes[h.ID] = r.Err.Code
	}
	busy, timeout := 0, 0
	for _, c := range codes {
		switch c {
		case codec.CodeBusy:
			busy++
		case codec.CodeTimeout:
			timeout++
		}
	}
	if busy != 2 || timeout != 3 {
		t.Fatalf("answers %v: want 3 timeouts and 2 busy", codes)
	}
	if st := p.Stats(); st.Busy != 2 || st.Pending != 0 {
		t.Fatalf("stats: busy %d, pending %d", st.Busy, st.Pending)
	}
}

// packetOnly hides a socket's concrete type, as a wrapper would.
type packetOnly struct{ net.PacketConn }

// TestServeReturnsWhenItsSocketCloses: Serve ends, with an error that says
// so, when the socket it serves is closed under it.
func TestServeReturnsWhenItsSocketCloses(t *testing.T) {
	p, err := udpproxy.New(udpproxy.Config{Servers: []udpproxy.ServerAddr{blackHole(t)}, Logger: discaltest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(conn) }()
	eventually.True(t, 5*time.Second, "the proxy to serve", func() bool { return p.Addr() != nil })
	conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve returned %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return when its socket was closed")
	}
}

// TestServeAnyPacketConn: a socket that is not a *net.UDPConn (a wrapper
// that counts or filters) serves as the server's Serve does: binary and
// text requests through it are answered, and the kernel's drop count,
// which such a socket does not have, reads as 0.
func TestServeAnyPacketConn(t *testing.T) {
	_, calc, status := discaltest.StartServer(t, udpserver.Config{Name: "s1"})
	p, err := udpproxy.New(udpproxy.Config{Servers: []udpproxy.ServerAddr{{Calc: calc.String(), Status: status.String()}},
		Logger: discaltest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	discaltest.ServeProxy(t, p, packetOnly{conn})
	addr := conn.LocalAddr().(*net.UDPAddr)
	eventually.True(t, 5*time.Second, "the server in rotation", func() bool { ok, _ := p.Ready(); return ok })
	if got := string(exchange(t, addr, []byte("6 * 7\n"))); got != "42\n" {
		t.Fatalf("text through a wrapped socket: %q, want \"42\\n\"", got)
	}
	c := dialClient(t, addr, udpclient.Config{})
	r, err := c.Do(context.Background(), codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})
	if err != nil || r.Result != codec.IntNumber(42) || r.Server != "s1" {
		t.Fatalf("binary through a wrapped socket: %+v, %v", r, err)
	}
	if n := p.Stats().Drops["rx_overflow"]; n != 0 {
		t.Errorf("rx_overflow %d on a socket with no kernel count", n)
	}
}
