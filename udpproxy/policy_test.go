package udpproxy

import (
	"fmt"
	"math"
	"math/rand/v2"
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
	b.report.Store(&report{Status: codec.Status{HostCPU: host, ProcCPU: proc, Cores: cores}, at: nanotime()})
	h, p := &group{}, &group{}
	h.bg.Store(math.Float64bits(host / 100))
	p.bg.Store(math.Float64bits(proc / (100 * float64(cores))))
	b.host.Store(h)
	b.proc.Store(p)
}

func TestLeastLoadPicksLowestScore(t *testing.T) {
	bs := backends(t, 3)
	setReport(bs[0], 50, 80, 2)
	setReport(bs[1], 50, 10, 2)
	setReport(bs[2], 50, 40, 2)
	r := rand.New(rand.NewPCG(1, 2))
	p := LeastLoad()
	if got := p.Pick(bs, nil, r); got != bs[1] {
		t.Fatalf("picked %s, want the server with the least process CPU", got.addr.Calc)
	}
	// In-flight requests count at once: 4 outstanding on 2 cores outweigh
	// 30 points of process CPU.
	bs[1].inFlight.Store(4)
	if got := p.Pick(bs, nil, r); got != bs[2] {
		t.Fatalf("picked %s, want the next server once the first has work in flight", got.addr.Calc)
	}
	if got := p.Pick(bs, bs[2], r); got != bs[1] {
		t.Fatalf("avoiding the best, picked %s", got.addr.Calc)
	}
	bs[1].down.Store(true)
	bs[0].down.Store(true)
	if got := p.Pick(bs, bs[2], r); got != bs[2] {
		t.Fatal("with only the avoided server up, it must still be picked")
	}
	bs[2].down.Store(true)
	if got := p.Pick(bs, nil, r); got != nil {
		t.Fatal("picked a server when all are down")
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
		LeastLoad().Pick(bs, nil, r).inFlight.Add(1) // nothing is answered
	}
	if a, b := float64(bs[0].inFlight.Load()), float64(bs[1].inFlight.Load()); b < 1.8*a || b > 2.2*a {
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
		counts[LeastLoad().Pick(bs, nil, r)]++
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
		counts[LeastLoad().Pick(bs, nil, r)]++
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
	old := *bs[0].report.Load()
	old.at = nanotime() - int64(10*bs[0].poll) // ...long ago
	bs[0].report.Store(&old)
	setReport(bs[1], 50, 20, 2)
	setReport(bs[2], 50, 40, 2)
	f := newFleet(bs)
	want := 2 * ((0.1 + 0.5) + (0.2 + 0.5)) / 2 // cpuWeight × the mean of the fresh two
	if got := f.score(bs[0]); got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("stale score %v, want the fresh mean %v", got, want)
	}
	// Halfway between two and five intervals it is half and half.
	old.at = nanotime() - int64(35*bs[0].poll/10)
	bs[0].report.Store(&old)
	f = newFleet(bs)
	if got, mid := f.score(bs[0]), (want+2*(0.95+0.5))/2; got < mid-0.02 || got > mid+0.02 {
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
		bs[i].inFlight.Store(2)
		bs[i].observe(lat*time.Microsecond, now)
	}
	f := newFleet(bs)
	fast, slow := f.score(bs[0]), f.score(bs[2])
	if fast != f.score(bs[1]) {
		t.Fatal("two equal servers score differently")
	}
	base := 2*(0.1+0.5) + 2.0/16
	if fast != base {
		t.Fatalf("a server faster than the mean scored %v, want %v (no reward)", fast, base)
	}
	if want := 2*(0.1+0.5) + 2.0*2/16; slow < want-1e-9 || slow > want+1e-9 { // 400 over a mean of 200
		t.Fatalf("the slow server scored %v, want %v", slow, want)
	}
	// A latency no reply has fed for over a second no longer counts.
	bs[2].latencyAt.Store(now - 2*latencyMaxAge)
	if f := newFleet(bs); f.score(bs[2]) != f.score(bs[0]) {
		t.Fatal("an old latency still counts")
	}
}

func TestRoundRobinAndRandom(t *testing.T) {
	bs := backends(t, 3)
	bs[1].down.Store(true)
	r := rand.New(rand.NewPCG(7, 8))
	for _, p := range []Policy{RoundRobin(), Random()} {
		counts := map[*Server]int{}
		for range 3000 {
			counts[p.Pick(bs, nil, r)]++
		}
		if counts[bs[1]] != 0 || counts[bs[0]] < 1300 || counts[bs[2]] < 1300 {
			t.Errorf("%s: counts %v", p, counts)
		}
		if got := p.Pick(bs, bs[0], r); got != bs[2] {
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
