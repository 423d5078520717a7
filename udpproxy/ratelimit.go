package udpproxy

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/discal/discal/internal/loglimit"
)

// limiter sheds requests from any one source beyond a steady rate: a token
// bucket per source address (golang.org/x/time/rate), so that one flooding
// client, or a spoofer using one victim's address, gets no more than its
// share. Buckets are kept per address, not per port, since a source can
// open ports at will; and per /64 network for IPv6, since a single IPv6
// host usually holds a whole /64 and could otherwise take a fresh address
// for every request. Idle buckets are forgotten, and the number kept is
// bounded: beyond it, new sources share one bucket, so a flood from
// countless spoofed addresses costs a bounded amount of memory and still
// gets no more than one source's rate. The price is that while the table
// is full, a new honest client shares that bucket with the flood; clients
// already known keep their own.
type limiter struct {
	limit  rate.Limit
	burst  int
	max    int // buckets kept at most, across shards
	seed   maphash.Seed
	shards [16]limiterShard
	spill  *rate.Limiter  // shared by the sources beyond max
	log    loglimit.Limit // the line that says a source is shed
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// maxSources bounds the buckets kept. Each costs about 190 bytes (measured
// by BenchmarkLimiterSources), so the table holds 25 MB at most.
const maxSources = 1 << 17

// idleSources is how long a bucket is kept after its source's last request.
const idleSources = 10 * time.Second

func newLimiter(perSecond float64, burst int) *limiter {
	l := &limiter{limit: rate.Limit(perSecond), burst: burst, max: maxSources, seed: maphash.MakeSeed(),
		spill: rate.NewLimiter(rate.Limit(perSecond), burst)}
	for i := range l.shards {
		l.shards[i].buckets = map[netip.Addr]*bucket{}
	}
	return l
}

// allow reports whether a request from this source may go on now.
func (l *limiter) allow(from netip.Addr, now time.Time) bool {
	from = sourceKey(from)
	// A keyed hash picks the shard, so that no choice of addresses piles
	// every source onto one shard's lock and share of the table.
	s := &l.shards[maphash.Comparable(l.seed, from)%uint64(len(l.shards))]
	s.mu.Lock()
	b, ok := s.buckets[from]
	if !ok {
		if len(s.buckets) >= l.max/len(l.shards) {
			s.mu.Unlock()
			return l.spill.AllowN(now, 1)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		s.buckets[from] = b
	}
	b.last = now
	ok = b.lim.AllowN(now, 1)
	s.mu.Unlock()
	return ok
}

// sourceKey is the bucket a source address counts against: an IPv4
// address (also when written as IPv4-mapped IPv6) is its own; an IPv6
// address counts against its /64.
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().Addr()
}

// forget drops the buckets of sources idle since before cutoff.
func (l *limiter) forget(cutoff time.Time) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for a, b := range s.buckets {
			if b.last.Before(cutoff) {
				delete(s.buckets, a)
			}
		}
		s.mu.Unlock()
	}
}
