package udpproxy

import (
	"math/rand/v2"
	"sync/atomic"
)

// Policy chooses the backend for a request. Pick returns nil when no
// backend is up; avoid, when not nil, is a backend to pass over if any other
// is up (the one a retried request already failed on).
type Policy interface {
	Pick(bs []*backend, avoid *backend, r *rand.Rand) *backend
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

// score is a backend's load, lower is better:
//
//	score = proc_cpu/(100·cores) + host_cpu/100 + in_flight/(8·cores)
//
// proc_cpu/(100·cores) is the share of its capacity the server process
// uses: it tells apart servers that share a host, which all report the same
// host figure. host_cpu/100 is how busy the server's host is: it tells apart
// servers on different hosts. Both come from the last status reply, up to a
// poll interval old. in_flight is what the proxy has sent the server and not
// yet seen answered; it is exact and current, so a burst inside one poll
// interval raises the score of each server it lands on at once and spreads
// instead of herding onto the server that looked idle at the last poll.
// Dividing by cores gives a server with more cores proportionally more work.
func score(b *backend) float64 {
	cores := 1.0
	var cpu float64
	if r := b.report.Load(); r != nil {
		if r.Cores > 0 {
			cores = float64(r.Cores)
		}
		cpu = r.ProcCPU/(100*cores) + r.HostCPU/100
	}
	return cpu + float64(b.inFlight.Load())/(queuePerCore*cores)
}

// tieBand is how close two scores must be to count as equal. Reports are
// sampled at different moments and never tie exactly, so without a band
// the choice would follow measurement noise and herd onto whichever server
// happened to sample lowest. 0.05 is 5% of a server's capacity; one more
// request in flight on a 2-core server (1/16 = 0.0625) already breaks the
// tie, so the live in-flight count still decides between equal servers.
const tieBand = 0.05

func (leastLoad) Pick(bs []*backend, avoid *backend, r *rand.Rand) *backend {
	// Score every backend once; a few live on the stack.
	var buf [16]float64
	scores := buf[:0]
	if len(bs) > len(buf) {
		scores = make([]float64, 0, len(bs))
	}
	for _, b := range bs {
		scores = append(scores, score(b))
	}
	for _, skip := range [2]*backend{avoid, nil} {
		best := -1.0
		for i, b := range bs {
			if b != skip && b.up() && (best < 0 || scores[i] < best) {
				best = scores[i]
			}
		}
		if best < 0 {
			if skip == nil {
				break
			}
			continue
		}
		// Reservoir sampling: each backend within the band is equally
		// likely to be chosen.
		var pick *backend
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

func (p *roundRobin) Pick(bs []*backend, avoid *backend, _ *rand.Rand) *backend {
	n := uint64(len(bs))
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

func (random) Pick(bs []*backend, avoid *backend, r *rand.Rand) *backend {
	for _, skip := range []*backend{avoid, nil} {
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
