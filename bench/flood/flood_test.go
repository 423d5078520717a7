package flood

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/arith"
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

	lies, drops, transients, tries, distinct atomic.Int64
	mu                                       sync.Mutex
	seen                                     map[key]bool
	wg                                       sync.WaitGroup
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
		if first {
			p.distinct.Add(1)
		}
		if p.drop != nil && p.drop(h.ID) {
			if first {
				p.drops.Add(1)
			}
			continue
		}
		r := codec.Reply{Server: p.name}
		switch res, err := arith.Eval(req.Op, req.A, req.B); {
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
	if res.Errors != 0 || res.Timeouts != 0 {
		t.Fatalf("errors %d, timeouts %d", res.Errors, res.Timeouts)
	}
}

func TestCountsTimeoutsAndRetries(t *testing.T) {
	p := newPeer(t, "lossy")
	p.drop = func(id uint64) bool { return hash(id)%5 == 0 }
	p.start()
	// The timeout is long next to a loopback reply, so only the dropped
	// requests time out; the checks below hold however the timing falls.
	cfg := Config{Targets: []string{p.addr()}, Requests: 500, InFlight: 32, Conns: 2,
		Timeout: 100 * time.Millisecond, Retries: 1}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dropped := uint64(p.drops.Load())
	if res.Timeouts != dropped || dropped == 0 {
		t.Fatalf("counted %d timeouts, the peer dropped %d requests", res.Timeouts, dropped)
	}
	if res.Retransmits < dropped {
		t.Fatalf("retransmits %d, want at least one per dropped request (%d)", res.Retransmits, dropped)
	}
	if res.OK != 500-dropped || res.Sent != 500 {
		t.Fatalf("ok %d, sent %d", res.OK, res.Sent)
	}
	if got := uint64(p.tries.Load()); got != 500+res.Retransmits {
		t.Fatalf("the peer saw %d datagrams; the bench sent 500 and %d retransmissions", got, res.Retransmits)
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
	if res.Errors != n || n == 0 || res.Retransmits < 2*n || res.OK != 400-n {
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
	if res.PerServer["a"]+res.PerServer["b"] != 1000 || res.PerServer["a"] != uint64(a.distinct.Load()) {
		t.Fatalf("per server %v; a saw %d requests, b %d", res.PerServer, a.distinct.Load(), b.distinct.Load())
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

// TestOpenLoopSendsTheQuota: the open loop sends exactly the requests
// asked for, each answered.
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

// TestPercentiles checks the report's latency figures on known samples:
// two connections' histograms holding 1..10000 microseconds between them,
// merged and read as the Result's durations.
func TestPercentiles(t *testing.T) {
	rs := &run{cfg: Config{InFlight: 8, Conns: 2}}
	conns := []*conn{{hist: newHistogram(), perServer: map[string]uint64{}}, {hist: newHistogram(), perServer: map[string]uint64{}}}
	for v := int64(1); v <= 10000; v++ {
		if err := conns[v%2].hist.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	conns[0].ok, conns[1].ok = 5000, 5000
	conns[1].lastAnswer = int64(2 * time.Second)
	r := collect(rs, conns, time.Second)
	for _, c := range []struct {
		name string
		got  time.Duration
		want time.Duration
	}{{"p50", r.P50, 5 * time.Millisecond}, {"p90", r.P90, 9 * time.Millisecond},
		{"p99", r.P99, 9900 * time.Microsecond}, {"p99.9", r.P999, 9990 * time.Microsecond}, {"max", r.Max, 10 * time.Millisecond}} {
		// Three significant digits: within 0.1% (HDR rounds up to the
		// bucket's highest equivalent value).
		if c.got < c.want || float64(c.got) > float64(c.want)*1.001+float64(time.Microsecond) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if r.RPS != 5000 || r.Duration != 2*time.Second || r.OK != 10000 {
		t.Errorf("rps %v over %v for %d ok", r.RPS, r.Duration, r.OK)
	}
}

// TestJSONAndTable: the JSON carries the keys scripts rely on, and the
// table the figures people read.
func TestJSONAndTable(t *testing.T) {
	r := &Result{Targets: []string{"127.0.0.1:7000"}, Conns: 4, InFlight: 128, Duration: 2 * time.Second, RPS: 1234.5,
		Sent: 10, OK: 7, Wrong: 1, Errors: 1, Timeouts: 1, P50: 150 * time.Microsecond, P99: 2 * time.Millisecond,
		PerServer: map[string]uint64{"s1": 5, "s2": 4}, CPU: time.Second,
		Timeline: []Bucket{{Start: 0, PerServer: map[string]uint64{"s1": 5, "s2": 4}}}}
	var b strings.Builder
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"rps": 1234.5, "p50_us": 150, "p99_us": 2000, "sent": 10, "ok": 7,
		"wrong": 1, "errors": 1, "timeouts": 1} {
		if got, ok := m[k].(float64); !ok || got != want {
			t.Errorf("JSON %q = %v, want %v", k, m[k], want)
		}
	}
	if ps, ok := m["per_server"].(map[string]any); !ok || ps["s1"] != 5.0 || ps["s2"] != 4.0 {
		t.Errorf("JSON per_server = %v", m["per_server"])
	}
	if _, ok := m["timeline"].([]any); !ok {
		t.Errorf("JSON timeline = %v", m["timeline"])
	}
	b.Reset()
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"throughput  1234 requests/s", "p50 150us", "p99 2.00ms",
		"sent 10  ok 7  wrong 1  errors 1  timeouts 1", "s1 5 (55.6%) s2 4 (44.4%)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestOpenLoopCountsFromIntendedTime: a request the pacer sends late is
// timed from when it was meant to go, so a stall cannot hide.
func TestOpenLoopCountsFromIntendedTime(t *testing.T) {
	p := newPeer(t, "s").start()
	rs := &run{cfg: Config{Rate: 1000, Conns: 1, Timeout: time.Second, Retries: 1}, start: time.Now()}
	c, err := newConn(rs, 0, p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.sock.Close()
	c.quota, c.window, c.interval = 5, 1024, int64(time.Millisecond)
	c.initSlots()
	// The pacer wakes 50 ms late: the five requests meant for 0-4 ms go
	// now, in a burst, and keep their intended moments.
	time.Sleep(50 * time.Millisecond) // the lateness under test, not a wait for a result
	if _, more := c.paceDue(); more {
		t.Fatal("the quota of five is not used up")
	}
	starts := map[int64]bool{}
	for _, s := range c.slots {
		if s.busy {
			starts[s.start] = true
		}
	}
	for k := range int64(5) {
		if !starts[k*int64(time.Millisecond)] {
			t.Fatalf("no request timed from %v: starts %v", time.Duration(k)*time.Millisecond, starts)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Targets: []string{"x"}, Requests: -1}, {Targets: []string{"127.0.0.1:1"}, InFlight: 1 << 20, Conns: 1}} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) accepted", cfg)
		}
	}
}
