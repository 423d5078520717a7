package udpproxy

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Policy chooses the backend for a request. Pick returns nil when no
// backend is up; avoid, when not nil, is a backend to pass over if any other
// is up (the one a retried request already failed on).
type Policy interface {
	Pick(bs []*Server, avoid *Server, r *rand.Rand) *Server
	String() string
}

// ParsePolicy returns the policy named by the -policy flag.
func ParsePolicy(name string) (Policy, bool) {
	switch name {
	case "least-load":
		return LeastLoad(), true
	case "round-robin":
		return RoundRobin(), true
	case "random":
		return Random(), true
	}
	return nil, false
}

// LeastLoad picks the backend with the lowest load score (see score), with
// ties broken at random.
func LeastLoad() Policy { return leastLoad{} }

type leastLoad struct{}

func (leastLoad) String() string { return "least-load" }

// queuePerCore is how many outstanding requests per core the proxy counts as
// one fully busy core. It converts the live in-flight count into the same
// unit as the CPU figures.
const queuePerCore = 8

// cpuWeight is how much the background CPU (load the proxy did not send,
// see load.go) counts against the live in-flight count. Weighed double, a
// server busy with other work (measured: one burning 80% of a core) is left
// alone while the others have room, rather than given a share in
// proportion to its spare capacity. Measured with the real-process tests in
// internal/e2e, five runs each: at weight 2 the burned server got at most
// 0.6% of the requests, equal servers were within 1.06 times of each other
// and never over 40% in any 100 ms.
const cpuWeight = 2

// fleet is what a choice needs to know about all backends at once: the mean
// CPU load of those with fresh reports, to stand in for a stale one, and the
// mean reply latency, the yardstick for a slow server.
type fleet struct {
	now     int64
	meanCPU float64
	meanLat float64
}

func newFleet(bs []*Server) fleet {
	f := fleet{now: nanotime()}
	n, m := 0, 0
	for _, b := range bs {
		if r := b.report.Load(); r != nil && freshness(f.now-r.at, b.poll) == 1 {
			f.meanCPU += reportedCPU(b)
			n++
		}
		if l := b.recentLatencyUS(f.now); l > 0 && b.up() {
			f.meanLat += l
			m++
		}
	}
	if n > 0 {
		f.meanCPU /= float64(n)
	}
	if m > 0 {
		f.meanLat /= float64(m)
	}
	return f
}

// reportedCPU is a backend's background load as a share of its capacity:
// its process's and its host's, less what the proxy's own requests explain
// (see load.go).
func reportedCPU(b *Server) float64 {
	var cpu float64
	if p := b.proc.Load(); p != nil {
		cpu += p.background()
	}
	if h := b.host.Load(); h != nil {
		cpu += h.background()
	}
	return cpu
}

// freshness weighs a report by its age: fully trusted up to two poll
// intervals (one missed poll), not at all from five, linearly between.
// (Three missed polls take the server out of rotation anyway.)
func freshness(age int64, poll time.Duration) float64 {
	p := int64(poll)
	switch {
	case age <= 2*p:
		return 1
	case age >= 5*p:
		return 0
	}
	return float64(5*p-age) / float64(3*p)
}

// score is a backend's load, lower is better:
//
//	score = 2 × background + in_flight × slowness / (8 × cores)
//
//	background = the share of the server's capacity its process and its
//	            host spend on work the proxy did not send (load.go); as the
//	            last report ages past two poll intervals it is blended into
//	            the mean of the fresh ones, so a stale report neither
//	            attracts nor repels work
//	slowness  = the server's average reply time over the mean of all the
//	            servers' averages, from 1 (no faster than the mean: a
//	            fast server earns no extra work, which would only pull
//	            work towards idle ones) up to 4; an average no reply has
//	            fed for a second no longer counts
//
// The process's background tells apart servers that share a host, which all
// report the same host figure; the host's tells apart servers on different
// hosts. Neither counts the CPU the proxy's own requests cost: in_flight is
// that load, exact and current; a CPU figure is a sample late, and counting
// it too made equal servers take turns being avoided. in_flight is what
// the proxy has sent the server and not yet seen answered; it is exact and
// current, so a burst inside one poll interval raises the score of each
// server it lands on at once and spreads instead of herding onto the server
// that looked idle at the last poll. Weighing it by slowness makes a queue
// at a slow server count for more, which is what it costs a request that
// joins it. Dividing by cores gives a server with more cores proportionally
// more work.
func (f *fleet) score(b *Server) float64 {
	cores := 1.0
	cpu := f.meanCPU
	if r := b.report.Load(); r != nil {
		cores = float64(max(1, r.Cores))
		w := freshness(f.now-r.at, b.poll)
		cpu = w*reportedCPU(b) + (1-w)*f.meanCPU
	}
	q := float64(b.inFlight.Load())
	if lat := b.recentLatencyUS(f.now); lat > 0 && f.meanLat > 0 {
		q *= min(max(lat/f.meanLat, 1), 4)
	}
	return cpuWeight*cpu + q/(queuePerCore*cores)
}

// tieBand is how close two scores must be to count as equal. Reports are
// sampled at different moments and never tie exactly, so without a band
// the choice would follow measurement noise and herd onto whichever server
// happened to sample lowest. 0.05 is 5% of a server's capacity; one more
// request in flight on a 2-core server (1/16 = 0.0625) already breaks the
// tie, so the live in-flight count still decides between equal servers.
const tieBand = 0.05

func (leastLoad) Pick(bs []*Server, avoid *Server, r *rand.Rand) *Server {
	// Score every backend once; a few live on the stack.
	var buf [16]float64
	scores := buf[:0]
	if len(bs) > len(buf) {
		scores = make([]float64, 0, len(bs))
	}
	f := newFleet(bs)
	for _, b := range bs {
		s := f.score(b)
		if math.IsNaN(s) {
			s = math.Inf(1) // never chosen over a server with a real score
		}
		scores = append(scores, s)
	}
	for _, skip := range [2]*Server{avoid, nil} {
		best, any := math.Inf(1), false
		for i, b := range bs {
			if b != skip && b.up() && (!any || scores[i] < best) {
				best, any = scores[i], true
			}
		}
		if !any {
			if skip == nil {
				break
			}
			continue
		}
		// Reservoir sampling: each backend within the band is equally
		// likely to be chosen.
		var pick *Server
		n := 0
		for i, b := range bs {
			if b != skip && b.up() && scores[i] <= best+tieBand {
				n++
				if r.IntN(n) == 0 {
					pick = b
				}
			}
		}
		return pick
	}
	return nil
}

// RoundRobin takes the backends in turn, skipping those that are down.
func RoundRobin() Policy { return &roundRobin{} }

type roundRobin struct{ next atomic.Uint64 }

func (*roundRobin) String() string { return "round-robin" }

func (p *roundRobin) Pick(bs []*Server, avoid *Server, _ *rand.Rand) *Server {
	n := uint64(len(bs))
	if n == 0 {
		return nil
	}
	// Every position the counter passes is used up, so the servers that
	// are up take turns evenly whichever ones are down.
	for range 2 * n {
		b := bs[p.next.Add(1)%n]
		if b.up() && b != avoid {
			return b
		}
	}
	if avoid != nil && avoid.up() {
		return avoid
	}
	return nil
}

// Random picks any backend that is up.
func Random() Policy { return random{} }

type random struct{}

func (random) String() string { return "random" }

func (random) Pick(bs []*Server, avoid *Server, r *rand.Rand) *Server {
	for _, skip := range []*Server{avoid, nil} {
		n := 0
		for _, b := range bs {
			if b.up() && b != skip {
				n++
			}
		}
		if n == 0 {
			continue
		}
		k := r.IntN(n)
		for _, b := range bs {
			if b.up() && b != skip {
				if k == 0 {
					return b
				}
				k--
			}
		}
	}
	return nil
}
