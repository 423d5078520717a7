package udpproxy

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
)

// Policy chooses the server for each request. It sees a Choice: the
// servers in rotation (never empty), the server a retry should pass over,
// and least-load's score. A new policy is a type with these two methods,
// here or in any package, handed to Config.Policy; ParsePolicy names the
// ones the udpproxy command offers.
//
// Pick runs for every request on the proxy's hot path: it must not block
// or allocate, and should look at a bounded number of servers, whatever
// the size of the fleet.
type Policy interface {
	Pick(c *Choice) *Server
	String() string
}

// Choice is what a policy sees of one decision. The proxy reuses it from
// request to request: a policy must not keep it.
type Choice struct {
	// Servers are the servers that take new work now: polled and
	// answering, not draining, not ejected (or, when none is, the best of
	// the rest; see rotationOf in health.go). Never empty.
	Servers []*Server
	// Avoid, when not nil, is a server to pass over if any other can take
	// the request: the one a retried request already timed out on.
	Avoid *Server
	// Rand is the worker's own random source.
	Rand *rand.Rand

	now   int64
	fleet *fleet
}

// Score is least-load's score of s, lower is better (score.go).
func (c *Choice) Score(s *Server) float64 { return c.fleet.score(s, c.now) }

// LatencyUS is s's recent mean reply time in µs, 0 when no reply has fed
// it for a second.
func (c *Choice) LatencyUS(s *Server) float64 { return s.traffic.recentLatencyUS(c.now) }

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

// LeastLoad draws three servers in rotation at random (all of them when
// there are three or fewer) and takes the one with the lowest score, ties
// broken at random. A few looks cost the same for 3 servers or 1,000, and
// choosing the best of a few random servers spreads a burst that a full
// scan would send all to the one server that looked idle at the last
// report: the power of d choices (Mitzenmacher; Envoy and gRPC use d = 2).
// Three rather than two keeps the common small fleet's choice exact, the
// full least-load that the balancing results (docs/balancing.md) were
// measured with.
// What the proxy sees outranks what servers say inside the score: a slow
// server's queue counts up to 64 times, and its claimed cores are capped
// (score.go).
func LeastLoad() Policy { return leastLoad{} }

type leastLoad struct{}

func (leastLoad) String() string { return "least-load" }

// choices is how many servers least-load looks at per request.
const choices = 3

// tieBand is how close two scores must be to count as equal. Reports are
// sampled at different moments and never tie exactly, so without a band
// the choice would follow measurement noise. 0.05 is 5% of a server's
// capacity; one more request in flight on a 2-core server (1/16 = 0.0625)
// already breaks the tie, so the live in-flight count still decides
// between equal servers.
const tieBand = 0.05

func (leastLoad) Pick(c *Choice) *Server {
	var buf [choices]*Server
	cand := sample(c, buf[:0])
	var scores [choices]float64
	best := math.Inf(1)
	for i, s := range cand {
		scores[i] = c.Score(s)
		best = min(best, scores[i])
	}
	// Reservoir sampling: each candidate within the band is equally
	// likely to be chosen.
	pick, n := cand[0], 0
	for i, s := range cand {
		if scores[i] <= best+tieBand {
			n++
			if c.Rand.IntN(n) == 0 {
				pick = s
			}
		}
	}
	return pick
}

// sample appends to out up to choices different servers drawn from c at
// random, without c.Avoid when any other is drawn.
func sample(c *Choice, out []*Server) []*Server {
	ss := c.Servers
	if n := len(ss); n <= choices {
		out = append(out, ss...)
	} else {
		i := c.Rand.IntN(n)
		j := c.Rand.IntN(n - 1)
		if j >= i {
			j++
		}
		k := c.Rand.IntN(n - 2)
		if k >= min(i, j) {
			k++
		}
		if k >= max(i, j) {
			k++
		}
		out = append(out, ss[i], ss[j], ss[k])
	}
	if c.Avoid == nil || len(out) == 1 {
		return out
	}
	for i, s := range out {
		if s == c.Avoid {
			return append(out[:i], out[i+1:]...)
		}
	}
	return out
}

// RoundRobin takes the servers in rotation in turn.
func RoundRobin() Policy { return &roundRobin{} }

type roundRobin struct{ next atomic.Uint64 }

func (*roundRobin) String() string { return "round-robin" }

func (p *roundRobin) Pick(c *Choice) *Server {
	n := uint64(len(c.Servers))
	s := c.Servers[p.next.Add(1)%n]
	if s == c.Avoid && n > 1 {
		s = c.Servers[p.next.Add(1)%n]
	}
	return s
}

// Random picks any server in rotation.
func Random() Policy { return random{} }

type random struct{}

func (random) String() string { return "random" }

func (random) Pick(c *Choice) *Server {
	n := len(c.Servers)
	i := c.Rand.IntN(n)
	if c.Servers[i] == c.Avoid && n > 1 {
		i = (i + 1 + c.Rand.IntN(n-1)) % n
	}
	return c.Servers[i]
}
