package udpclient

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/codec"
)

// refusing returns an address where nothing listens: a port bound and
// closed again, so that the kernel answers with ICMP port unreachable.
func refusing(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// TestCalculationErrorReturnedOnce: the error comes back as the error, and
// the reply carries no copy of it, only who refused.
func TestCalculationErrorReturnedOnce(t *testing.T) {
	p := newPeer(t, nil)
	c := dial(t, p.addr(), Config{})
	r, err := c.Do(ctx, codec.Request{Op: codec.OpDiv, A: codec.IntNumber(1), B: codec.IntNumber(0)})
	if !errors.Is(err, codec.ErrDivByZero) || errors.Is(err, ErrNoAnswer) {
		t.Fatalf("error %v, want division by zero", err)
	}
	if r.Err != nil || r.Server != "peer" {
		t.Fatalf("reply %+v: want no Err and the server named", r)
	}
	ans, err := c.Exchange(ctx, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})
	if err != nil || !ans.Result.Equal(codec.IntNumber(42)) || ans.Server != "peer" || ans.Proxy != p.addr() ||
		ans.Tries != 1 || ans.ID == 0 || p.tries(ans.ID) != 1 || ans.Latency <= 0 {
		t.Fatalf("answer %+v, %v", ans, err)
	}
}

// TestRefusedFailsFast: when the network says nothing listens at any of the
// proxies, the request fails at once, not after the retries, and the error
// names every address.
func TestRefusedFailsFast(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(strings.Repeat("x", n), func(t *testing.T) {
			var addrs []string
			for range n {
				addrs = append(addrs, refusing(t))
			}
			c, err := DialContext(ctx, addrs, Config{Timeout: 5 * time.Second, Retries: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			_, err = c.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1))
			if d := time.Since(start); d > time.Second {
				t.Errorf("failed after %v, want under a second", d)
			}
			var na *NoAnswerError
			if !errors.Is(err, ErrNoAnswer) || !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &na) {
				t.Fatalf("error %v, want no answer, connection refused", err)
			}
			for _, a := range addrs {
				if !strings.Contains(err.Error(), a) {
					t.Errorf("error %q does not name %s", err, a)
				}
			}
			if na.Tries != n {
				t.Errorf("%d tries, want one a proxy (%d)", na.Tries, n)
			}
		})
	}
}

// TestRefusedMovesOn: a proxy that refuses is left for the next one at
// once, and later requests go straight there.
func TestRefusedMovesOn(t *testing.T) {
	live := newPeer(t, nil)
	c := dial(t, refusing(t)+","+live.addr(), Config{Timeout: 5 * time.Second, Retries: 1})
	start := time.Now()
	for i := range 5 {
		n, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(int64(i)), codec.IntNumber(1))
		if err != nil || !n.Equal(codec.IntNumber(int64(i+1))) {
			t.Fatalf("request %d: %v, %v", i, n, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v: the refusal was not taken as one", d)
	}
	if c.Proxy() != live.addr() || live.total() != 5 {
		t.Fatalf("client at %s, live proxy got %d of 5", c.Proxy(), live.total())
	}
}

// TestDeadlineBoundsRetries: the context's deadline ends the schedule, and
// the error says both that no answer came and that the deadline passed.
func TestDeadlineBoundsRetries(t *testing.T) {
	p := newPeer(t, func(p *peer) { p.dropFirst = 1 << 30 })
	c := dial(t, p.addr(), Config{Timeout: 20 * time.Millisecond, Retries: 1000})
	dctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	ans, err := c.Exchange(dctx, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(1)})
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("returned after %v, want at the 150ms deadline", d)
	}
	if !errors.Is(err, ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), p.addr()) {
		t.Fatalf("error %v, want no answer from %s at the deadline", err, p.addr())
	}
	// 20 + 40 + 80 ms fit before the deadline: three tries, or a fourth
	// just sent as the deadline came; a loaded machine may fire a timer
	// late and fit one fewer, but never a retry past the deadline.
	if got := p.tries(ans.ID); ans.Tries < 2 || ans.Tries > 4 || got > ans.Tries {
		t.Errorf("peer saw %d tries, the answer says %d; want 2 to 4", got, ans.Tries)
	}
}

func TestSilenceNamesTheProxy(t *testing.T) {
	p := newPeer(t, func(p *peer) { p.dropFirst = 1 << 30 })
	c := dial(t, p.addr(), Config{Timeout: 5 * time.Millisecond, Retries: 2})
	_, err := c.Calc(ctx, codec.OpAdd, codec.IntNumber(1), codec.IntNumber(1))
	if want := "udpclient: no answer from " + p.addr() + " after 3 tries"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestDialContext(t *testing.T) {
	p := newPeer(t, nil)
	c, err := DialContext(ctx, []string{p.addr()}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Calc(ctx, codec.OpSub, codec.IntNumber(1), codec.IntNumber(3)); err != nil || !n.Equal(codec.IntNumber(-2)) {
		t.Fatalf("1 - 3 = %v, %v", n, err)
	}
	for _, bad := range [][]string{nil, {""}, {p.addr(), "nohost:port:x"}} {
		if c, err := DialContext(ctx, bad, Config{}); err == nil {
			c.Close()
			t.Errorf("DialContext(%q) succeeded", bad)
		}
	}
}
