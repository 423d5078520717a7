package udpproxy_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
)

// slowServer answers every request right, after delay.
func slowServer(t *testing.T, delay time.Duration) udpproxy.ServerAddr {
	t.Helper()
	return discaltest.StartFake(t, discaltest.FakeConfig{Name: "slow", Delay: delay}).ServerAddr()
}

// serveAndDial serves p on 127.0.0.1:0 and returns a client socket
// connected to it, and the channel Serve's result comes on: these tests
// stop the proxy themselves.
func serveAndDial(t *testing.T, p *udpproxy.Proxy) (*net.UDPConn, <-chan error) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(conn) }()
	client, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client, served
}

// TestShutdownDrains: Shutdown stops taking requests but waits for those
// pending: the ones a slow server answers reach their clients, the ones no
// server answers get "timeout", and only then does Serve return.
func TestShutdownDrains(t *testing.T) {
	p, err := udpproxy.New(udpproxy.Config{
		Servers:    []udpproxy.ServerAddr{slowServer(t, 200*time.Millisecond), blackHole(t)},
		Policy:     udpproxy.RoundRobin(), // half to each
		TryTimeout: 300 * time.Millisecond, Tries: 1,
		NoHedge: true, // else the slow server answers for the black hole
		Logger:  discaltest.Quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	client, served := serveAndDial(t, p)
	const n = 20
	for i := range n {
		if _, err := client.Write(codec.AppendRequest(nil, uint64(i), codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})); err != nil {
			t.Fatal(err)
		}
	}
	waitPending(t, p, n)
	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(context.Background()) }()

	answers, timeouts := 0, 0
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	for answers+timeouts < n {
		k, err := client.Read(buf)
		if err != nil {
			t.Fatalf("after %d answers and %d timeouts: %v", answers, timeouts, err)
		}
		r, err := codec.DecodeReply(buf[codec.HeaderSize:k])
		switch {
		case err != nil:
			t.Fatal(err)
		case r.Err == nil && r.Result.Equal(codec.IntNumber(42)):
			answers++
		case errors.Is(r.Err, codec.ErrTimeout):
			timeouts++
		default:
			t.Fatalf("unexpected reply %+v", r)
		}
	}
	if answers != n/2 || timeouts != n/2 {
		t.Fatalf("%d answers and %d timeouts, want %d of each", answers, timeouts, n/2)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, udpproxy.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if st := p.Stats(); st.Pending != 0 {
		t.Fatalf("%d still pending after Shutdown", st.Pending)
	}
}

// TestShutdownStopsTakingRequests: once Shutdown has begun, a new request
// gets no answer; a Shutdown whose context ends first returns its error.
func TestShutdownStopsTakingRequests(t *testing.T) {
	p, err := udpproxy.New(udpproxy.Config{Servers: []udpproxy.ServerAddr{blackHole(t)}, TryTimeout: time.Hour, Logger: discaltest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	client, served := serveAndDial(t, p)
	if _, err := client.Write(codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpAdd})); err != nil {
		t.Fatal(err)
	}
	waitPending(t, p, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(ctx) }()
	// The pending request would wait an hour: Shutdown gives up when its
	// context does, and the request is answered "timeout" on the way out.
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	<-served
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1024)
	k, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := codec.DecodeReply(buf[codec.HeaderSize:k]); !errors.Is(r.Err, codec.ErrTimeout) {
		t.Fatalf("the pending request was answered %+v", r)
	}
	// Nothing listens any more.
	if _, err := client.Write(codec.AppendRequest(nil, 2, codec.Request{Op: codec.OpAdd})); err == nil {
		_ = client.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := client.Read(buf); err == nil {
			t.Fatal("a request after Shutdown was answered")
		}
	}
}

func waitPending(t *testing.T, p *udpproxy.Proxy, n int) {
	t.Helper()
	eventually.True(t, 5*time.Second, "the requests to be pending", func() bool { return p.Stats().Pending == n })
}

// TestDrainingServerGetsNoNewWork: a server told to drain (lame duck) is
// sent no new requests while the others take them; undrained, it gets work
// again; and when every server drains, they all still answer.
func TestDrainingServerGetsNoNewWork(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 3, Proxy: udpproxy.Config{Poll: 20 * time.Millisecond}})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{})
	run := func(n int) {
		for range n {
			if _, err := cl.Calc(context.Background(), codec.OpAdd, codec.IntNumber(1), codec.IntNumber(2)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s1 := c.Servers[0].Running()
	if got := string(exchange(t, c.Servers[0].StatAddr, []byte("drain\n"))); got != "ok: drain\n" {
		t.Fatalf("drain answered %q", got)
	}
	if !s1.Draining() {
		t.Fatal("the server is not draining")
	}
	eventually.True(t, 5*time.Second, "the proxy to see the drain", func() bool { return backendByName(c.Proxy, "s1").Draining })
	before := s1.Stats().Served
	run(500)
	if got := s1.Stats().Served - before; got != 0 {
		t.Fatalf("the draining server got %d new requests", got)
	}
	if !strings.Contains(string(exchange(t, c.ProxyAddr, []byte("stats\n"))), "\ns1 ") ||
		!strings.Contains(string(exchange(t, c.ProxyAddr, []byte("stats\n"))), " draining ") {
		t.Error("stats does not show the draining server")
	}
	exchange(t, c.Servers[0].StatAddr, []byte("undrain\n"))
	eventually.True(t, 5*time.Second, "the proxy to see the undrain", func() bool { return !backendByName(c.Proxy, "s1").Draining })
	run(500)
	if s1.Stats().Served == before {
		t.Fatal("undrained, the server got no work")
	}
	// Every server draining: any is better than none.
	for _, s := range c.Servers {
		s.Running().Drain()
	}
	eventually.True(t, 5*time.Second, "all drains seen", func() bool {
		for _, b := range c.Proxy.Stats().Servers {
			if !b.Draining {
				return false
			}
		}
		return true
	})
	run(100)
}
