package udpproxy_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/calc"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/cluster"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startCluster(t *testing.T, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	cfg.Server.Quiet = true
	if cfg.Logger == nil {
		cfg.Logger = cluster.Quiet()
	}
	c, err := cluster.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("cluster shutdown: %v", err)
		}
	})
	return c
}

func dialClient(t *testing.T, addr net.Addr, cfg udpclient.Config) *udpclient.Client {
	t.Helper()
	c, err := udpclient.Dial(addr.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// randomRequest draws operands of both kinds, small and huge, so that the
// answers include exact integers, floats, overflow and division by zero.
func randomRequest(r *rand.Rand) codec.Request {
	num := func() codec.Number {
		switch r.IntN(6) {
		case 0:
			return codec.FloatNumber((r.Float64() - 0.5) * 1e6)
		case 1:
			return codec.IntNumber(r.Int64() - math.MaxInt64/2)
		case 2:
			return codec.IntNumber(int64(r.IntN(3)))
		default:
			return codec.IntNumber(r.Int64N(2001) - 1000)
		}
	}
	return codec.Request{Op: codec.Ops[r.IntN(len(codec.Ops))], A: num(), B: num()}
}

// checkAnswer compares a reply with the answer computed locally.
func checkAnswer(req codec.Request, r codec.Reply, err error) error {
	want, wantErr := calc.Eval(req.Op, req.A, req.B)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			return fmt.Errorf("%v: got %v, %v; want error %v", req, r.Result, err, wantErr)
		}
		return nil
	}
	if err != nil || !r.Result.Equal(want) {
		return fmt.Errorf("%v: got %#v, %v; want %#v", req, r.Result, err, want)
	}
	return nil
}

// TestSystemRandomOps runs three servers, the proxy and 8 concurrent
// clients doing 10,000 random operations: every answer must equal the one
// computed locally, and every server must have served at least 15%.
func TestSystemRandomOps(t *testing.T) {
	c := startCluster(t, cluster.Config{Servers: 3})
	const clients, total = 8, 10000
	var mu sync.Mutex
	perServer := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		cl := dialClient(t, c.ProxyAddr, udpclient.Config{Timeout: time.Second, Retries: 3})
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 99))
			local := map[string]int{}
			for range total / clients {
				req := randomRequest(r)
				rep, err := cl.Do(context.Background(), req)
				if err := checkAnswer(req, rep, err); err != nil {
					errs <- err
					return
				}
				local[rep.Server]++
			}
			mu.Lock()
			for k, v := range local {
				perServer[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sum := 0
	for _, s := range c.Servers {
		n := perServer[s.Name]
		sum += n
		if n < total*15/100 {
			t.Errorf("server %s served %d of %d (%.1f%%), want at least 15%%", s.Name, n, total, 100*float64(n)/total)
		}
	}
	if sum != total {
		t.Errorf("replies named servers %v, summing to %d of %d", perServer, sum, total)
	}
	if st := c.Proxy.Stats(); st.Pending != 0 || st.Replies < total {
		t.Errorf("after the run: pending %d, replies %d", st.Pending, st.Replies)
	}
	t.Logf("per server: %v", perServer)
}

func raw(t *testing.T, id uint64, body any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return append(codec.AppendHeader(nil, codec.KindRequest, id), b...)
}

// exchange sends one datagram from a fresh socket and returns the answer.
func exchange(t *testing.T, addr *net.UDPAddr, pkt []byte) []byte {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %q: %v", pkt, err)
	}
	return buf[:n]
}

// TestErrorsThroughProxy checks that every error case comes back through the
// proxy as an explicit error reply, with the client's own ID.
func TestErrorsThroughProxy(t *testing.T) {
	c := startCluster(t, cluster.Config{Servers: 2})
	I, F := codec.IntNumber, codec.FloatNumber
	req := func(op codec.Op, a, b codec.Number) []byte {
		return codec.AppendRequest(nil, 0, codec.Request{Op: op, A: a, B: b})
	}
	tests := []struct {
		name string
		pkt  []byte
		code codec.Code
	}{
		{"division by zero", req(codec.OpDiv, I(1), I(0)), codec.CodeDivByZero},
		{"float division by zero", req(codec.OpDiv, F(1), F(0)), codec.CodeDivByZero},
		{"overflow", req(codec.OpMul, I(math.MaxInt64), I(2)), codec.CodeOverflow},
		{"NaN operand", req(codec.OpAdd, F(math.NaN()), I(1)), codec.CodeNaN},
		{"infinite operand", req(codec.OpAdd, F(math.Inf(-1)), I(1)), codec.CodeInfinite},
		{"infinite result", req(codec.OpMul, F(1e300), F(-1e300)), codec.CodeNotFinite},
		{"unknown operation", raw(t, 0, map[string]any{"op": "mod", "a": 1, "b": 2}), codec.CodeUnknownOp},
		{"missing field", raw(t, 0, map[string]any{"op": "add", "b": 2}), codec.CodeMissingField},
		{"wrong type", raw(t, 0, map[string]any{"op": "add", "a": []int{1}, "b": 2}), codec.CodeWrongType},
		{"malformed body", raw(t, 0, "not a map"), codec.CodeMalformed},
		{"too large", append(req(codec.OpAdd, I(1), I(1)), make([]byte, codec.MaxDatagram)...), codec.CodeTooLarge},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint64(0xC0FFEE00 + i)
			codec.SetID(tt.pkt, id)
			got := exchange(t, c.ProxyAddr, tt.pkt)
			h, err := codec.ParseHeader(got)
			if err != nil || h.Kind != codec.KindReply || h.ID != id {
				t.Fatalf("reply header %+v, %v; want a reply to ID %x", h, err, id)
			}
			r, err := codec.DecodeReply(got[codec.HeaderSize:])
			if err != nil || r.Err == nil || r.Err.Code != tt.code {
				t.Fatalf("reply %+v (%v), %v; want code %d", r, r.Err, err, tt.code)
			}
		})
	}

	text := []struct{ in, want string }{
		{"6 * 7\n", "42\n"},
		{"7 / 2", "3.5\n"},
		{"add 2 3\n", "5\n"},
		{"1 / 0\n", "error: division by zero\n"},
		{"9223372036854775807 * 2", "error: integer overflow\n"},
		{"inf - 1", "error: operand is infinite\n"},
		{"six * seven", "error: syntax error: \"six\" is not a number\n"},
		{"hello", "error: syntax error: \"hello\" is not a number\n"},
		{"1 2 + 3", "error: syntax error: want NUMBER OP NUMBER or OP NUMBER NUMBER\n"},
	}
	for _, tt := range text {
		if got := string(exchange(t, c.ProxyAddr, []byte(tt.in))); got != tt.want {
			t.Errorf("text %q answered %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestGarbageStopsNothing throws malformed datagrams at the proxy; requests
// sent among them are all answered right, and the garbage is counted.
func TestGarbageStopsNothing(t *testing.T) {
	c := startCluster(t, cluster.Config{Servers: 2})
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
	waitFor(t, 5*time.Second, "garbage counted", func() bool {
		d := c.Proxy.Stats().Drops
		return d["magic"]+d["short"]+d["kind"] >= 2000
	})
}

// waitFor polls cond until it holds or the time is up. It waits for a state
// the system reaches by itself, not for time to pass.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func backendByName(p *udpproxy.Proxy, name string) udpproxy.BackendStats {
	for _, b := range p.Stats().Backends {
		if b.Name == name {
			return b
		}
	}
	return udpproxy.BackendStats{}
}

// TestServerStoppedMidRun stops one of three servers while clients keep
// sending: every request still gets the right answer, the proxy takes the
// server out of rotation, and once it is started again it gets work again.
func TestServerStoppedMidRun(t *testing.T) {
	c := startCluster(t, cluster.Config{Servers: 3, Proxy: udpproxy.Config{
		Poll: 20 * time.Millisecond, TryTimeout: 100 * time.Millisecond}})
	victim := c.Servers[1]
	waitFor(t, 5*time.Second, "a first report from every server", func() bool {
		for _, b := range c.Proxy.Stats().Backends {
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
		cl := dialClient(t, c.ProxyAddr, udpclient.Config{Timeout: 2 * time.Second, NoRetries: true})
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
	waitFor(t, 10*time.Second, "load to start", func() bool { return count() > 200 })

	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if err := victim.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the proxy to take the stopped server out", func() bool {
		return !backendByName(c.Proxy, victim.Name).Up
	})
	before := count()
	waitFor(t, 10*time.Second, "more answers without the server", func() bool { return count() > before+500 })

	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the restarted server back in rotation", func() bool {
		return backendByName(c.Proxy, victim.Name).Up
	})
	served := victim.Running().Stats().Served
	waitFor(t, 10*time.Second, "the restarted server to get work", func() bool {
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

// blackHole is a server that answers status polls but never computes: a
// stand-in for a server whose calculator hangs.
func blackHole(t *testing.T) udpproxy.ServerAddr {
	t.Helper()
	calc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	status, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := calc.ReadFrom(buf); err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := status.ReadFrom(buf)
			if err != nil {
				return
			}
			if h, err := codec.ParseHeader(buf[:n]); err == nil && h.Kind == codec.KindStatusQuery {
				_, _ = status.WriteTo(codec.AppendStatus(nil, h.ID, codec.Status{Server: "hole", Cores: 1}), from)
			}
		}
	})
	t.Cleanup(func() {
		calc.Close()
		status.Close()
		wg.Wait()
	})
	return udpproxy.ServerAddr{Calc: calc.LocalAddr().String(), Status: status.LocalAddr().String()}
}

func startProxy(t *testing.T, cfg udpproxy.Config) (*udpproxy.Proxy, *net.UDPAddr) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = cluster.Quiet()
	}
	p, err := udpproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(conn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, udpproxy.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return p, conn.LocalAddr().(*net.UDPAddr)
}

// TestTimeoutAnswered sends requests to two servers that never answer: each
// is tried on both, then answered "timeout", and nothing stays pending.
func TestTimeoutAnswered(t *testing.T) {
	p, addr := startProxy(t, udpproxy.Config{
		Servers:    []udpproxy.ServerAddr{blackHole(t), blackHole(t)},
		TryTimeout: 30 * time.Millisecond,
	})
	cl := dialClient(t, addr, udpclient.Config{Timeout: 2 * time.Second, NoRetries: true})
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
	for _, b := range st.Backends {
		if b.Sent != 6 || b.Timeouts != 6 || b.InFlight != 0 {
			t.Errorf("backend %s: sent %d, timeouts %d, in flight %d", b.Name, b.Sent, b.Timeouts, b.InFlight)
		}
	}
}

// TestNoServerAvailable stops every server: once the proxy has seen them
// miss their polls, requests get an immediate "no server available".
func TestNoServerAvailable(t *testing.T) {
	c := startCluster(t, cluster.Config{Servers: 2, Proxy: udpproxy.Config{Poll: 10 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.Servers {
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "every server out of rotation", func() bool {
		for _, b := range c.Proxy.Stats().Backends {
			if b.Up {
				return false
			}
		}
		return true
	})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{Timeout: 2 * time.Second, NoRetries: true})
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
	waitFor(t, 5*time.Second, "a server back", func() bool { return backendByName(c.Proxy, "s1").Up })
	if n, err := cl.Calc(ctx, codec.OpMul, codec.IntNumber(2), codec.IntNumber(21)); err != nil || !n.Equal(codec.IntNumber(42)) {
		t.Fatalf("after restart: %v, %v", n, err)
	}
}

// TestBusyWhenFull: beyond MaxPending waiting requests the proxy answers
// "busy" at once, and the waiting ones still get their own answers.
func TestBusyWhenFull(t *testing.T) {
	p, addr := startProxy(t, udpproxy.Config{
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

// TestLongServerName: a name longer than the codec's interning buffer still
// comes through in replies and status reports.
func TestLongServerName(t *testing.T) {
	name := "calculator-number-one.example.internal"
	c := startCluster(t, cluster.Config{Servers: 1, Server: udpserver.Config{Name: name}})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{})
	r, err := cl.Do(context.Background(), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(1)})
	if err != nil || r.Server != name {
		t.Fatalf("reply %+v, %v", r, err)
	}
	waitFor(t, 5*time.Second, "a report naming the server", func() bool {
		b := backendByName(c.Proxy, name)
		return b.HasReport && b.Up
	})
}

func TestStatsCommand(t *testing.T) {
	c := startCluster(t, cluster.Config{Servers: 2})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{})
	for range 10 {
		if _, err := cl.Calc(context.Background(), codec.OpAdd, codec.IntNumber(1), codec.IntNumber(2)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "reports", func() bool {
		return backendByName(c.Proxy, "s1").HasReport && backendByName(c.Proxy, "s2").HasReport
	})
	out := string(exchange(t, c.ProxyAddr, []byte("stats\n")))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "proxy policy=least-load ") || !strings.Contains(lines[0], " requests=10 ") {
		t.Fatalf("stats:\n%s", out)
	}
	for i, l := range lines[1:] {
		name := fmt.Sprintf("s%d ", i+1)
		if !strings.HasPrefix(l, name) || !strings.Contains(l, " up host_cpu=") || !strings.Contains(l, " in_flight=0 ") || !strings.Contains(l, " age=") {
			t.Errorf("server line %q", l)
		}
	}
}

// fakeServer is a real UDP socket standing in for a server's calculator
// port, so that a test can see the IDs the proxy uses and answer as it
// likes; status polls go to a real status port beside it.
type fakeServer struct {
	calc *net.UDPConn
	reqs chan codec.Header
}

func newFakeServer(t *testing.T) (*fakeServer, udpproxy.ServerAddr) {
	t.Helper()
	calc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{calc: calc, reqs: make(chan codec.Header, 100)}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, err := calc.Read(buf)
			if err != nil {
				return
			}
			if h, err := codec.ParseHeader(buf[:n]); err == nil {
				f.reqs <- h
			}
		}
	})
	hole := blackHole(t) // a status port that answers polls
	t.Cleanup(func() { calc.Close(); wg.Wait() })
	return f, udpproxy.ServerAddr{Calc: calc.LocalAddr().String(), Status: hole.Status}
}

// TestForgedRepliesNeverReachClients: replies to the proxy's server-facing
// socket from an address the request did not go to, or with IDs the proxy
// never used, are dropped and counted; the client gets only the real
// answer.
func TestForgedRepliesNeverReachClients(t *testing.T) {
	srv, addr := newFakeServer(t)
	p, paddr := startProxy(t, udpproxy.Config{Servers: []udpproxy.ServerAddr{addr}, TryTimeout: 2 * time.Second})
	client, err := net.DialUDP("udp", nil, paddr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write(codec.AppendRequest(nil, 77, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})); err != nil {
		t.Fatal(err)
	}
	var h codec.Header
	select {
	case h = <-srv.reqs:
	case <-time.After(3 * time.Second):
		t.Fatal("the request never reached the server")
	}
	upstream := p.UpstreamAddr().(*net.UDPAddr)
	up := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: upstream.Port}
	lie := codec.AppendReply(nil, h.ID, codec.Reply{Result: codec.IntNumber(666), Server: "liar"})
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
		if _, err := srv.calc.WriteToUDP(codec.AppendReply(nil, h.ID^uint64(i+1)<<7, codec.Reply{Result: codec.IntNumber(666)}), up); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the forgeries counted", func() bool {
		d := p.Stats().Drops
		return d["forged_reply"] == 1 && d["unknown_reply"] == 100
	})
	// 3. The real answer, from the server the request went to.
	if _, err := srv.calc.WriteToUDP(codec.AppendReply(nil, h.ID, codec.Reply{Result: codec.IntNumber(42), Server: "real"}), up); err != nil {
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
	c := startCluster(t, cluster.Config{Servers: 1, Proxy: udpproxy.Config{RateLimit: 50, RateBurst: 20}})
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
	c := startCluster(t, cluster.Config{Servers: 1})
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

// TestDrainingServerGetsNoNewWork: a server told to drain (lame duck) is
// sent no new requests while the others take them; undrained, it gets work
// again; and when every server drains, they all still answer.
func TestDrainingServerGetsNoNewWork(t *testing.T) {
	c := startCluster(t, cluster.Config{Servers: 3, Proxy: udpproxy.Config{Poll: 20 * time.Millisecond}})
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
	waitFor(t, 5*time.Second, "the proxy to see the drain", func() bool { return backendByName(c.Proxy, "s1").Draining })
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
	waitFor(t, 5*time.Second, "the proxy to see the undrain", func() bool { return !backendByName(c.Proxy, "s1").Draining })
	run(500)
	if s1.Stats().Served == before {
		t.Fatal("undrained, the server got no work")
	}
	// Every server draining: any is better than none.
	for _, s := range c.Servers {
		s.Running().Drain()
	}
	waitFor(t, 5*time.Second, "all drains seen", func() bool {
		for _, b := range c.Proxy.Stats().Backends {
			if !b.Draining {
				return false
			}
		}
		return true
	})
	run(100)
}
