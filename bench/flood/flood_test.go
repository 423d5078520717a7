package flood

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/calc"
	"github.com/discal/discal/codec"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer is a real UDP server that computes like a discal server and can
// misbehave on purpose, counting exactly what it did, so that the bench's
// counts can be checked against it.
type peer struct {
	conn *net.UDPConn
	name string
	// lie, when it returns true for a request ID, makes the answer wrong.
	lie func(id uint64) bool
	// drop, when it returns true, leaves every try of that ID unanswered.
	drop func(id uint64) bool
	// transient, when it returns true, answers every try with "busy".
	transient func(id uint64) bool

	lies, drops, transients, tries atomic.Int64
	mu                             sync.Mutex
	seen                           map[key]bool
	wg                             sync.WaitGroup
}

func newPeer(t *testing.T, name string) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{conn: c, name: name, seen: map[key]bool{}}
	t.Cleanup(func() {
		c.Close()
		p.wg.Wait()
	})
	return p
}

func (p *peer) start() *peer {
	p.wg.Go(p.serve)
	return p
}

func (p *peer) addr() string { return p.conn.LocalAddr().String() }

// key names a request: IDs are unique per client socket only.
type key struct {
	from netip.AddrPort
	id   uint64
}

// first reports whether this is the first try of a request the peer sees.
func (p *peer) first(from netip.AddrPort, id uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key{from, id}
	if p.seen[k] {
		return false
	}
	p.seen[k] = true
	return true
}

func (p *peer) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.tries.Add(1)
		h, err := codec.ParseHeader(buf[:n])
		if err != nil {
			continue
		}
		req, err := codec.DecodeRequest(buf[codec.HeaderSize:n])
		if err != nil {
			continue
		}
		first := p.first(from, h.ID)
		if p.drop != nil && p.drop(h.ID) {
			if first {
				p.drops.Add(1)
			}
			continue
		}
		r := codec.Reply{Server: p.name}
		switch res, err := calc.Eval(req.Op, req.A, req.B); {
		case p.transient != nil && p.transient(h.ID):
			r.Err = codec.ErrBusy
			if first {
				p.transients.Add(1)
			}
		case p.lie != nil && p.lie(h.ID):
			// A wrong answer whatever the right one was.
			r.Result = codec.IntNumber(424242)
			if err == nil && res.Equal(r.Result) {
				r.Result = codec.IntNumber(424243)
			}
			p.lies.Add(1)
		case err != nil:
			r.Err = codec.AsError(err)
		default:
			r.Result = res
		}
		_, _ = p.conn.WriteToUDPAddrPort(codec.AppendReply(nil, h.ID, r), from)
	}
}

// hash spreads IDs so that "every 7th request" does not follow slots.
func hash(id uint64) uint64 {
	id ^= id >> 33
	id *= 0xff51afd7ed558ccd
	return id ^ id>>33
}

func TestCountsRightAndWrong(t *testing.T) {
	p := newPeer(t, "liar")
	p.lie = func(id uint64) bool { return hash(id)%7 == 0 }
	p.start()
	res, err := Run(context.Background(), Config{Targets: []string{p.addr()}, Requests: 3000, InFlight: 16, Conns: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3000 || res.OK+res.Wrong != 3000 {
		t.Fatalf("sent %d, ok %d, wrong %d", res.Sent, res.OK, res.Wrong)
	}
	if res.Wrong != uint64(p.lies.Load()) || res.Wrong == 0 {
		t.Fatalf("counted %d wrong, the peer lied %d times", res.Wrong, p.lies.Load())
	}
	if res.PerServer["liar"] != 3000 {
		t.Fatalf("per server %v", res.PerServer)
	}
	if res.Errors != 0 || res.Timeouts != 0 || res.Retransmits != 0 {
		t.Fatalf("errors %d, timeouts %d, retransmits %d", res.Errors, res.Timeouts, res.Retransmits)
	}
}

func TestCountsTimeoutsAndRetries(t *testing.T) {
	p := newPeer(t, "lossy")
	p.drop = func(id uint64) bool { return hash(id)%5 == 0 }
	p.start()
	cfg := Config{Targets: []string{p.addr()}, Requests: 500, InFlight: 32, Conns: 2,
		Timeout: 20 * time.Millisecond, Retries: 1}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dropped := uint64(p.drops.Load())
	if res.Timeouts != dropped || dropped == 0 {
		t.Fatalf("counted %d timeouts, the peer dropped %d requests", res.Timeouts, dropped)
	}
	if res.Retransmits != dropped {
		t.Fatalf("retransmits %d, want one per dropped request (%d)", res.Retransmits, dropped)
	}
	if res.OK != 500-dropped || res.Sent != 500 {
		t.Fatalf("ok %d, sent %d", res.OK, res.Sent)
	}
	if want := int64(500 + dropped); p.tries.Load() != want {
		t.Fatalf("the peer saw %d datagrams, want %d", p.tries.Load(), want)
	}
}

func TestCountsTransientErrors(t *testing.T) {
	p := newPeer(t, "busy")
	p.transient = func(id uint64) bool { return hash(id)%4 == 0 }
	p.start()
	res, err := Run(context.Background(), Config{Targets: []string{p.addr()}, Requests: 400, InFlight: 8, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(p.transients.Load())
	if res.Errors != n || n == 0 || res.Retransmits != 2*n || res.OK != 400-n {
		t.Fatalf("errors %d, retransmits %d, ok %d; the peer said busy to %d requests", res.Errors, res.Retransmits, res.OK, n)
	}
}

// TestShareAcrossTargets floods two servers; each answer is counted under
// the server that gave it.
func TestShareAcrossTargets(t *testing.T) {
	a, b := newPeer(t, "a").start(), newPeer(t, "b").start()
	res, err := Run(context.Background(), Config{Targets: []string{a.addr(), b.addr()}, Requests: 1000, Conns: 4,
		Timeline: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.PerServer["a"]+res.PerServer["b"] != 1000 || res.PerServer["a"] != uint64(a.tries.Load()) {
		t.Fatalf("per server %v; a saw %d, b saw %d", res.PerServer, a.tries.Load(), b.tries.Load())
	}
	// The timeline's buckets add up to the same shares.
	sum := map[string]uint64{}
	for i, bk := range res.Timeline {
		if bk.Start != time.Duration(i)*10*time.Millisecond {
			t.Fatalf("bucket %d starts at %v", i, bk.Start)
		}
		for k, v := range bk.PerServer {
			sum[k] += v
		}
	}
	if sum["a"] != res.PerServer["a"] || sum["b"] != res.PerServer["b"] {
		t.Fatalf("timeline sums %v, per server %v", sum, res.PerServer)
	}
}

// TestOpenLoopSendsTheQuota: the open loop sends exactly the requests
// asked for, each answered.
// TestEveryRequestAccounted: a run by duration, open and closed loop, ends
// with every request it started counted once as ok, wrong, error or
// timeout.
func TestEveryRequestAccounted(t *testing.T) {
	p := newPeer(t, "s")
	p.drop = func(id uint64) bool { return hash(id)%50 == 0 }
	p.start()
	for _, rate := range []float64{0, 20000} {
		res, err := Run(context.Background(), Config{Targets: []string{p.addr()}, Duration: 300 * time.Millisecond,
			Rate: rate, Timeout: 10 * time.Millisecond, Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		if done := res.OK + res.Wrong + res.Errors + res.Timeouts; done != res.Sent || res.Sent == 0 {
			t.Fatalf("rate %v: sent %d, accounted for %d", rate, res.Sent, done)
		}
	}
}

func TestOpenLoopSendsTheQuota(t *testing.T) {
	p := newPeer(t, "s").start()
	res, err := Run(context.Background(), Config{Targets: []string{p.addr()}, Requests: 300, Rate: 3000, Conns: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent+res.Overruns != 300 || res.OK != res.Sent || res.Rate != 3000 {
		t.Fatalf("sent %d, overruns %d, ok %d", res.Sent, res.Overruns, res.OK)
	}
}

// TestPercentiles checks the histogram and its reading on known samples:
// 1..10000 microseconds, each once.
func TestPercentiles(t *testing.T) {
	h := newHistogram()
	for v := int64(1); v <= 10000; v++ {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{50, 5000}, {90, 9000}, {99, 9900}, {99.9, 9990}, {100, 10000}} {
		got := h.ValueAtQuantile(c.q)
		// Three significant digits: within 0.1% (HDR rounds up to the
		// bucket's highest equivalent value).
		if got < c.want || float64(got) > float64(c.want)*1.001+1 {
			t.Errorf("p%v = %d, want %d", c.q, got, c.want)
		}
	}
	if h.Max() < 10000 || float64(h.Max()) > 10000*1.001 {
		t.Errorf("max %d", h.Max())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Targets: []string{"x"}, Requests: -1}, {Targets: []string{"127.0.0.1:1"}, InFlight: 1 << 20, Conns: 1}} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) accepted", cfg)
		}
	}
}
