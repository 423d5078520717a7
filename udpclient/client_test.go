package udpclient

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer is a real UDP endpoint that computes like a server but can
// misbehave on purpose: drop the first tries of each request, answer twice,
// answer with another ID, or answer with a transient error.
type peer struct {
	conn      *net.UDPConn
	dropFirst int           // tries of each ID to ignore
	duplicate bool          // send every answer twice
	stray     bool          // before each answer, send one for an ID nobody asked (2^40 away from any in flight)
	transient *codec.Error  // answer the first try of each ID with this
	always    bool          // answer every try with transient, not just the first
	delay     time.Duration // wait before answering
	mu        sync.Mutex
	seen      map[uint64]int
	wg        sync.WaitGroup
}

func newPeer(t testing.TB, configure func(*peer)) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{conn: c, seen: map[uint64]int{}}
	if configure != nil {
		configure(p)
	}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		c.Close()
		p.wg.Wait()
	})
	return p
}

func (p *peer) addr() string { return p.conn.LocalAddr().String() }

func (p *peer) tries(id uint64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[id]
}

// total returns how many requests the peer received, tries included.
func (p *peer) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, k := range p.seen {
		n += k
	}
	return n
}

func (p *peer) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		h, err := codec.ParseHeader(buf[:n])
		if err != nil {
			continue
		}
		req, err := codec.DecodeRequest(buf[codec.HeaderSize:n])
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.seen[h.ID]++
		try := p.seen[h.ID]
		p.mu.Unlock()
		if try <= p.dropFirst {
			continue
		}
		var r codec.Reply
		if p.transient != nil && (try == 1 || p.always) {
			r.Err = p.transient
		} else if res, err := arith.Eval(req.Op, req.A, req.B); err != nil {
			r.Err, r.Server = codec.AsError(err), "peer"
		} else {
			r.Result, r.Server = res, "peer"
		}
		out := codec.AppendReply(nil, h.ID, r)
		p.wg.Go(func() {
			time.Sleep(p.delay)
			if p.stray {
				_, _ = p.conn.WriteToUDPAddrPort(codec.AppendReply(nil, h.ID^(1<<40), codec.Reply{Result: codec.IntNumber(-1)}), from)
			}
			_, _ = p.conn.WriteToUDPAddrPort(out, from)
			if p.duplicate {
				_, _ = p.conn.WriteToUDPAddrPort(out, from)
			}
		})
	}
}

func dial(t *testing.T, addr string, cfg Config) *Client {
	t.Helper()
	c, err := Dial(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var ctx = context.Background()

// TestConcurrentCallersGetTheirOwnAnswers shares one client among many
// goroutines whose answers arrive out of order, with stray and duplicate
// replies mixed in.
func TestConcurrentCallersGetTheirOwnAnswers(t *testing.T) {
	p := newPeer(t, func(p *peer) { p.duplicate, p.stray = true, true })
	c := dial(t, p.addr(), Config{Timeout: 2 * time.Second})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				a := int64(g*1000 + i)
				n, err := c.Calc(ctx, codec.OpMul, codec.IntNumber(a), codec.IntNumber(3))
				if err != nil || !n.Equal(codec.IntNumber(3*a)) {
					t.Errorf("%d * 3 = %v, %v", a, n, err)
					failed.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() == 0 && c.Ignored() == 0 {
		t.Error("duplicates and strays were sent but none was counted as ignored")
	}
}

func TestRetransmitsWithTheSameID(t *testing.T) {
	p := newPeer(t, func(p *peer) { p.dropFirst = 2 })
	c := dial(t, p.addr(), Config{Timeout: 20 * time.Millisecond, Retries: 3})
	id := c.nextID.Load() + 1
	n, err := c.Calc(ctx, codec.OpSub, codec.IntNumber(10), codec.IntNumber(4))
	if err != nil || !n.Equal(codec.IntNumber(6)) {
		t.Fatalf("got %v, %v", n, err)
	}
	if got := p.tries(id); got != 3 {
		t.Fatalf("peer saw ID %x %d times, want 3 (two dropped, one answered)", id, got)
	}
}

func TestNoAnswerAfterRetries(t *testing.T) {
	p := newPeer(t, func(p *peer) { p.dropFirst = 100 })
	c := dial(t, p.addr(), Config{Timeout: 10 * time.Millisecond, Retries: 2})
	id := c.nextID.Load() + 1
	start := time.Now()
	_, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1))
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("error = %v, want ErrNoAnswer", err)
	}
	if got := p.tries(id); got != 3 {
		t.Fatalf("sent %d times, want 3", got)
	}
	// 10 + 20 + 40 ms of waiting at least: the backoff doubled.
	if d := time.Since(start); d < 70*time.Millisecond {
		t.Fatalf("gave up after %v, before the backoff could have run", d)
	}
}

func TestTransientErrorIsRetried(t *testing.T) {
	p := newPeer(t, func(p *peer) { p.transient = codec.ErrTimeout })
	c := dial(t, p.addr(), Config{Timeout: 40 * time.Millisecond, Retries: 1})
	n, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(2))
	if err != nil || !n.Equal(codec.IntNumber(3)) {
		t.Fatalf("got %v, %v; want 3 after a retry", n, err)
	}
	c2 := dial(t, p.addr(), Config{Timeout: 40 * time.Millisecond, Retries: NoRetries})
	_, err = c2.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(2))
	if !errors.Is(err, ErrNoAnswer) || !errors.Is(err, codec.ErrTimeout) {
		t.Fatalf("without retries: %v, want no answer with the timeout", err)
	}
}

func TestCalculationErrorIsReturned(t *testing.T) {
	p := newPeer(t, nil)
	c := dial(t, p.addr(), Config{})
	_, err := c.Calc(ctx, codec.OpDiv, codec.IntNumber(1), codec.IntNumber(0))
	var e *codec.Error
	if !errors.As(err, &e) || e.Code != codec.CodeDivByZero || errors.Is(err, ErrNoAnswer) {
		t.Fatalf("error = %v, want division by zero", err)
	}
}

func TestContextAndClose(t *testing.T) {
	p := newPeer(t, func(p *peer) { p.dropFirst = 100 })
	c := dial(t, p.addr(), Config{Timeout: time.Hour})
	cctx, cancel := context.WithCancel(ctx)
	go cancel()
	if _, err := c.Calc(cctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v", err)
	}
	done := make(chan error)
	go func() {
		_, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1))
		done <- err
	}()
	eventually.True(t, 5*time.Second, "the call to be sent", func() bool { return p.tries(c.nextID.Load()) > 0 })
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("call on a closing client returned %v", err)
	}
	if _, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("call on a closed client returned %v", err)
	}
}

func BenchmarkDo(b *testing.B) {
	p := newPeer(b, nil)
	c, err := Dial(p.addr(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(2)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Do(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMovesToTheNextProxy: with two proxies, the first silent, a request's
// retry goes to the second, and so does every later request: the silent
// one is tried once in all.
func TestMovesToTheNextProxy(t *testing.T) {
	dead := newPeer(t, func(p *peer) { p.dropFirst = 1 << 30 })
	live := newPeer(t, nil)
	c := dial(t, dead.addr()+", "+live.addr(), Config{Timeout: 20 * time.Millisecond, Retries: 3})
	if c.Proxy() != dead.addr() {
		t.Fatalf("starts at %s, want the first proxy %s", c.Proxy(), dead.addr())
	}
	for i := range 20 {
		n, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(int64(i)), codec.IntNumber(1))
		if err != nil || !n.Equal(codec.IntNumber(int64(i+1))) {
			t.Fatalf("request %d: %v, %v", i, n, err)
		}
	}
	if n := dead.total(); n != 1 {
		t.Fatalf("the silent proxy got %d requests, want 1", n)
	}
	if live.total() != 20 || c.Proxy() != live.addr() {
		t.Fatalf("the live proxy got %d of 20; the client is at %s", live.total(), c.Proxy())
	}
}

// TestTransientErrorMovesOn: a proxy that answers "no server available"
// is left for the next one, which has servers.
func TestTransientErrorMovesOn(t *testing.T) {
	empty := newPeer(t, func(p *peer) { p.transient, p.always = codec.ErrNoServer, true })
	live := newPeer(t, nil)
	c := dial(t, empty.addr()+","+live.addr(), Config{Timeout: 40 * time.Millisecond, Retries: 1})
	n, err := c.Calc(ctx, codec.OpMul, codec.IntNumber(6), codec.IntNumber(7))
	if err != nil || !n.Equal(codec.IntNumber(42)) {
		t.Fatalf("got %v, %v; want 42 from the second proxy", n, err)
	}
	if empty.total() != 1 || live.total() != 1 {
		t.Fatalf("tries: %d at the proxy without servers, %d at the other; want 1 and 1", empty.total(), live.total())
	}
}

// TestEveryProxySilent: the tries go round the proxies, and the request
// ends with ErrNoAnswer.
func TestEveryProxySilent(t *testing.T) {
	a := newPeer(t, func(p *peer) { p.dropFirst = 1 << 30 })
	b := newPeer(t, func(p *peer) { p.dropFirst = 1 << 30 })
	c := dial(t, a.addr()+","+b.addr(), Config{Timeout: 5 * time.Millisecond, Retries: 3})
	if _, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1)); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("error = %v, want ErrNoAnswer", err)
	}
	if a.total() != 2 || b.total() != 2 {
		t.Fatalf("four tries went %d to the first proxy and %d to the second, want 2 and 2", a.total(), b.total())
	}
}

func TestDialAddresses(t *testing.T) {
	for _, bad := range []string{"", " , ", "127.0.0.1", "127.0.0.1:7000,nohost:port:x"} {
		if c, err := Dial(bad, Config{}); err == nil {
			c.Close()
			t.Errorf("Dial(%q) succeeded", bad)
		}
	}
}
