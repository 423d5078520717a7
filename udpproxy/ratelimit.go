package udpproxy

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter sheds requests from any one source beyond a steady rate: a token
// bucket per source address (golang.org/x/time/rate), so that one flooding
// client, or a spoofer using one victim's address, gets no more than its
// share. Buckets are kept per address, not per port: a source can open
// ports at will. Idle buckets are forgotten, and the number kept is
// bounded: beyond it, new sources share one bucket, so a flood from
// countless spoofed addresses costs a bounded amount of memory and still
// gets no more than one source's rate.
type limiter struct {
	limit  rate.Limit
	burst  int
	shards [16]limiterShard
	spill  *rate.Limiter // shared by the sources beyond maxSources
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// maxSources bounds the buckets kept: about 100 bytes each, 10 MB at most.
const maxSources = 1 << 17

// idleSources is how long a bucket is kept after its source's last request.
const idleSources = 10 * time.Second

func newLimiter(perSecond float64, burst int) *limiter {
	l := &limiter{limit: rate.Limit(perSecond), burst: burst, spill: rate.NewLimiter(rate.Limit(perSecond), burst)}
	for i := range l.shards {
		l.shards[i].buckets = map[netip.Addr]*bucket{}
	}
	return l
}

// allow reports whether a request from this source may go on now.
func (l *limiter) allow(from netip.Addr, now time.Time) bool {
	s := &l.shards[from.As16()[15]%16]
	s.mu.Lock()
	b, ok := s.buckets[from]
	if !ok {
		if len(s.buckets) >= maxSources/len(l.shards) {
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

func (l *limiter) sources() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
