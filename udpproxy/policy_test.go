package udpproxy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/discal/discal/codec"
)

func backends(t *testing.T, n int) []*Server {
	t.Helper()
	bs := make([]*Server, n)
	for i := range bs {
		bs[i] = testBackend(t, fmt.Sprintf("127.0.0.1:%d", 7001+i))
	}
	return bs
}

// setReport gives b a fresh report whose background loads (what the load
// model would leave after its own requests) are host and proc percent.
func setReport(b *Server, host, proc float64, cores int) {
	b.polled.report.Store(&report{Status: codec.Status{HostCPU: host, ProcCPU: proc, Cores: cores}, at: nanotime()})
	b.polled.background.Store(math.Float64bits(host/100 + proc/(100*float64(cores))))
}

// pick runs p as the proxy does: over the rotation that bs makes and a
// fleet worked out from bs now.
func pick(p Policy, bs []*Server, avoid *Server, r *rand.Rand) *Server {
	rot := rotationOf(bs)
	if len(rot) == 0 {
		return nil
	}
	now := nanotime()
	return p.Pick(&Choice{Servers: rot, Avoid: avoid, Rand: r, now: now, fleet: newFleet(bs, now)})
}

// TestLeastLoadChoices: of three servers or fewer the lowest score wins,
// as a full least-load scan would choose; of many, a choice among three
// drawn at random never takes one of the two worst.
func TestLeastLoadChoices(t *testing.T) {
	bs := backends(t, 3)
	setReport(bs[0], 50, 80, 2)
	setReport(bs[1], 50, 10, 2)
	setReport(bs[2], 50, 40, 2)
	r := rand.New(rand.NewPCG(1, 2))
	p := LeastLoad()
	for range 100 {
		if got := pick(p, bs, nil, r); got != bs[1] {
			t.Fatalf("picked %s, want the server with the least process CPU", got.addr.Calc)
		}
	}
	// In-flight requests count at once: 6 outstanding on 2 cores (0.375)
	// outweigh 30 points of one core's CPU (0.15 of the server, weighed
	// double) by more than the tie band.
	bs[1].traffic.inFlight.Store(6)
	if got := pick(p, bs, nil, r); got != bs[2] {
		t.Fatalf("picked %s, want the next server once the first has work in flight", got.addr.Calc)
	}
	for range 100 {
		if got := pick(p, bs, bs[2], r); got == bs[2] {
			t.Fatal("picked the server to avoid while others are up")
		}
	}
	bs[1].state.down.Store(true)
	bs[0].state.down.Store(true)
	if got := pick(p, bs, bs[2], r); got != bs[2] {
		t.Fatal("with only the avoided server up, it must still be picked")
	}
	bs[2].state.down.Store(true)
	if got := pick(p, bs, nil, r); got != nil {
		t.Fatal("picked a server when all are down")
	}

	many := backends(t, 10)
	for i, s := range many {
		setReport(s, 0, float64(10*i), 2) // scores rise with i
	}
	counts := map[*Server]int{}
	for range 10000 {
		counts[pick(p, many, nil, r)]++
	}
	if counts[many[8]]+counts[many[9]] != 0 || counts[many[0]] < 2500 {
		t.Fatalf("of ten: the best won %d of 10000 (want about 3000), the two worst %d and %d (want 0)",
			counts[many[0]], counts[many[8]], counts[many[9]])
	}
}

// TestWhatIsSeenOutranksClaims: a server that claims a million idle cores
// but answers 25 times slower than its peers is believed to have twice
// their cores at most, and with two requests in flight it loses to a busy
// honest peer with as many: its queue counts 25 times.
func TestWhatIsSeenOutranksClaims(t *testing.T) {
	bs := backends(t, 3)
	now := nanotime()
	setReport(bs[0], 0, 0, 1<<20) // a liar
	setReport(bs[1], 20, 40, 2)
	setReport(bs[2], 20, 40, 2)
	bs[0].traffic.observe(5*time.Millisecond, now)
	bs[1].traffic.observe(200*time.Microsecond, now)
	bs[2].traffic.observe(200*time.Microsecond, now)
	f := newFleet(bs, now)
	if c := f.cores(bs[0]); c != 4 {
		t.Fatalf("the liar is believed to have %v cores, want 4 (twice its peers)", c)
	}
	for _, s := range bs {
		s.traffic.inFlight.Store(2)
	}
	liar, honest := f.score(bs[0], now), f.score(bs[1], now)
	if liar <= honest+tieBand {
		t.Fatalf("with two in flight each, the liar scores %.3f, the busy honest server %.3f: the liar must lose", liar, honest)
	}
	r := rand.New(rand.NewPCG(11, 12))
	for range 100 {
		if got := pick(LeastLoad(), bs, nil, r); got == bs[0] {
			t.Fatal("the slow liar won a choice")
		}
	}
}

// TestSRVWeightIsCapacity: of two SRV servers with equal cores, the one
// whose record weighs three times the other's is believed to have three
// times its capacity; a weight of 0 counts as a tenth of the mean.
func TestSRVWeightIsCapacity(t *testing.T) {
	bs := backends(t, 3)
	for i, w := range []uint16{10, 30, 0} {
		setReport(bs[i], 0, 0, 2)
		bs[i].source = fromSRV
		bs[i].srv.Store(srvRank(10, w))
	}
	f := newFleet(bs, nanotime())
	light, heavy, zero := f.cores(bs[0]), f.cores(bs[1]), f.cores(bs[2])
	if heavy != 3*light || zero >= light/2 || zero <= 0 {
		t.Fatalf("cores: weight 10 %.2f, weight 30 %.2f, weight 0 %.2f", light, heavy, zero)
	}
}

func TestPlausibleCores(t *testing.T) {
	for _, c := range []struct {
		cores, host, want int
	}{
		{0, 0, 1}, {-5, 4, 1}, {2, 0, 2}, {8, 4, 4}, {4, 8, 4}, {1 << 20, 0, maxCores}, {1 << 20, 1 << 20, maxCores},
	} {
		if got := plausibleCores(codec.Status{Cores: c.cores, HostCores: c.host}); got != c.want {
			t.Errorf("cores %d host %d: %d, want %d", c.cores, c.host, got, c.want)
		}
	}
}

// TestLeastLoadMoreCoresMoreWork: with equal CPU, a server with twice the
// cores takes about twice the requests in flight before it looks as busy.
func TestLeastLoadMoreCoresMoreWork(t *testing.T) {
	bs := backends(t, 2)
	setReport(bs[0], 0, 0, 2)
	setReport(bs[1], 0, 0, 4)
	r := rand.New(rand.NewPCG(3, 4))
	for range 600 {
		pick(LeastLoad(), bs, nil, r).traffic.inFlight.Add(1) // nothing is answered
	}
	if a, b := float64(bs[0].traffic.inFlight.Load()), float64(bs[1].traffic.inFlight.Load()); b < 1.8*a || b > 2.2*a {
		t.Fatalf("in flight: 2 cores %.0f, 4 cores %.0f; want about 1:2", a, b)
	}
}

// TestLeastLoadTiesAreRandom: equal servers with equal load are chosen
// evenly, not always the first.
func TestLeastLoadTiesAreRandom(t *testing.T) {
	bs := backends(t, 4)
	r := rand.New(rand.NewPCG(5, 6))
	counts := map[*Server]int{}
	for range 8000 {
		counts[pick(LeastLoad(), bs, nil, r)]++
	}
	for _, b := range bs {
		if n := counts[b]; n < 1800 || n > 2200 {
			t.Fatalf("counts %v: uneven tie-breaking", counts)
		}
	}
}

// TestLeastLoadNoisyReports: reports from equal servers differ by sampling
// noise only; the choice must still spread, not follow the noise.
func TestLeastLoadNoisyReports(t *testing.T) {
	bs := backends(t, 3)
	r := rand.New(rand.NewPCG(9, 10))
	counts := map[*Server]int{}
	for i := range 3000 {
		if i%100 == 0 { // a new round of polls: a few points of noise each
			for _, b := range bs {
				setReport(b, 40+4*r.Float64(), 10+4*r.Float64(), 2)
			}
		}
		counts[pick(LeastLoad(), bs, nil, r)]++
	}
	for _, b := range bs {
		if n := counts[b]; n < 800 {
			t.Fatalf("counts %v: a server got %d of 3000", counts, n)
		}
	}
}

// TestStaleReportFadesToMean: a report older than five poll intervals says
// nothing; the server counts as loaded as the fresh ones' mean.
func TestStaleReportFadesToMean(t *testing.T) {
	bs := backends(t, 3)
	setReport(bs[0], 50, 190, 2) // busy, but...
	old := *bs[0].polled.report.Load()
	old.at = nanotime() - 10*bs[0].polled.every.Load() // ...long ago
	bs[0].polled.report.Store(&old)
	setReport(bs[1], 50, 20, 2)
	setReport(bs[2], 50, 40, 2)
	now := nanotime()
	f := newFleet(bs, now)
	want := 2 * ((0.1 + 0.5) + (0.2 + 0.5)) / 2 // cpuWeight × the mean of the fresh two
	if got := f.score(bs[0], now); got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("stale score %v, want the fresh mean %v", got, want)
	}
	// Halfway between two and five intervals it is half and half.
	old.at = nanotime() - 35*bs[0].polled.every.Load()/10
	bs[0].polled.report.Store(&old)
	now = nanotime()
	f = newFleet(bs, now)
	if got, mid := f.score(bs[0], now), (want+2*(0.95+0.5))/2; got < mid-0.02 || got > mid+0.02 {
		t.Fatalf("aging score %v, want about %v", got, mid)
	}
}

// TestSlownessWeighsTheQueue: with equal CPU and equal queues, the server
// that answers slowly scores worse; a fast one earns nothing extra.
func TestSlownessWeighsTheQueue(t *testing.T) {
	bs := backends(t, 3)
	now := nanotime()
	for i, lat := range []time.Duration{100, 100, 400} {
		setReport(bs[i], 50, 20, 2)
		bs[i].traffic.inFlight.Store(2)
		bs[i].traffic.observe(lat*time.Microsecond, now)
	}
	f := newFleet(bs, now)
	fast, slow := f.score(bs[0], now), f.score(bs[2], now)
	if fast != f.score(bs[1], now) {
		t.Fatal("two equal servers score differently")
	}
	base := 2*(0.1+0.5) + 2.0/16
	if fast != base {
		t.Fatalf("a server no slower than the median scored %v, want %v (no reward)", fast, base)
	}
	if want := 2*(0.1+0.5) + 2.0*4/16; slow < want-1e-9 || slow > want+1e-9 { // 400 over a median of 100: queue ×4
		t.Fatalf("the slow server scored %v, want %v", slow, want)
	}
	// A latency no reply has fed for over a second no longer counts.
	bs[2].traffic.latencyAt.Store(now - 2*latencyMaxAge)
	if f := newFleet(bs, now); f.score(bs[2], now) != f.score(bs[0], now) {
		t.Fatal("an old latency still counts")
	}
	// The next reply starts the average again, from that reply alone.
	bs[2].traffic.observe(400*time.Microsecond, now)
	f = newFleet(bs, now)
	if got, want := f.score(bs[2], now), 2*(0.1+0.5)+2.0*4/16; got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("after one reply the slow server scored %v, want %v", got, want)
	}
}

func TestRoundRobinAndRandom(t *testing.T) {
	bs := backends(t, 3)
	bs[1].state.down.Store(true)
	r := rand.New(rand.NewPCG(7, 8))
	for _, p := range []Policy{RoundRobin(), Random()} {
		counts := map[*Server]int{}
		for range 3000 {
			counts[pick(p, bs, nil, r)]++
		}
		if counts[bs[1]] != 0 || counts[bs[0]] < 1300 || counts[bs[2]] < 1300 {
			t.Errorf("%s: counts %v", p, counts)
		}
		if got := pick(p, bs, bs[0], r); got != bs[2] {
			t.Errorf("%s: avoiding s0 picked %v", p, got.addr.Calc)
		}
	}
	for _, name := range []string{"least-load", "round-robin", "random"} {
		if p, ok := ParsePolicy(name); !ok || p.String() != name {
			t.Errorf("ParsePolicy(%q) = %v, %v", name, p, ok)
		}
	}
	if _, ok := ParsePolicy("fastest"); ok {
		t.Error("ParsePolicy accepted an unknown name")
	}
}

func TestParseServerAddr(t *testing.T) {
	if a, err := ParseServerAddr("127.0.0.1:7001,127.0.0.1:7101"); err != nil || a.Calc != "127.0.0.1:7001" || a.Status != "127.0.0.1:7101" {
		t.Fatalf("got %+v, %v", a, err)
	}
	for _, bad := range []string{"", "127.0.0.1:7001", ",127.0.0.1:7101", "a,b,c", "127.0.0.1:7001,"} {
		if _, err := ParseServerAddr(bad); err == nil {
			t.Errorf("ParseServerAddr(%q) accepted", bad)
		}
	}
}

// BenchmarkPick: least-load's choice costs the same whatever the number of
// servers in rotation.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 16, 256, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			bs := make([]*Server, n)
			now := nanotime()
			for i := range bs {
				bs[i] = newServerAt(ServerAddr{}, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 7001),
					netip.AddrPort{}, 100*time.Millisecond)
				setReport(bs[i], 10, float64(i%50), 2)
				bs[i].traffic.observe(time.Duration(100+i%7)*time.Microsecond, now)
			}
			c := &Choice{Servers: rotationOf(bs), Rand: rand.New(rand.NewPCG(1, 2)), now: now, fleet: newFleet(bs, now)}
			p := LeastLoad()
			b.ReportAllocs()
			for b.Loop() {
				p.Pick(c).traffic.inFlight.Add(0)
			}
		})
	}
}
