package flood

import (
	"math/bits"
	"time"
)

// timeSlice is what one connection saw in one Config.Timeline slice.
type timeSlice struct {
	perServer map[string]uint64
	lat       latencyBins
}

// slice returns the slice that now falls in, growing the timeline.
func (c *conn) slice(now int64) *timeSlice {
	b := int(now / int64(c.rs.cfg.Timeline))
	for len(c.timeline) <= b {
		c.timeline = append(c.timeline, &timeSlice{perServer: map[string]uint64{}})
	}
	return c.timeline[b]
}

// latencyBins is a coarse log-linear histogram of microseconds: four bins
// to each power of two, so a quantile is at most 25% high. A full
// HdrHistogram per slice and connection would cost hundreds of kilobytes;
// this costs 512 bytes, and a plot needs no more precision.
type latencyBins [latBins]uint32

const latBins = 128

// latBin is the bin of a latency of us microseconds.
func latBin(us int64) int {
	if us < 4 {
		return int(max(us, 0))
	}
	n := bits.Len64(uint64(us)) // at least 3
	return min(4*(n-2)+int(us>>(n-3)&3), latBins-1)
}

// latUpper is the largest latency, in microseconds, that falls in bin b.
func latUpper(b int) int64 {
	if b < 4 {
		return int64(b)
	}
	n, m := b/4+2, int64(b%4)
	return (4+m+1)<<(n-3) - 1
}

func (l *latencyBins) add(o *latencyBins) {
	for i, n := range o {
		l[i] += n
	}
}

// quantile is the latency below which a fraction q of the answers fell,
// rounded up to its bin's end; 0 when there are none.
func (l *latencyBins) quantile(q float64) time.Duration {
	var total uint64
	for _, n := range l {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	var seen uint64
	for b, n := range l {
		seen += uint64(n)
		if seen >= max(want, 1) {
			return time.Duration(latUpper(b)) * time.Microsecond
		}
	}
	return time.Duration(latUpper(latBins-1)) * time.Microsecond
}

// timeline merges the connections' slices into the result's buckets.
func timeline(width time.Duration, conns []*conn) []Bucket {
	var out []Bucket
	var lats []latencyBins
	for _, c := range conns {
		for i, s := range c.timeline {
			for len(out) <= i {
				out = append(out, Bucket{Start: time.Duration(len(out)) * width, PerServer: map[string]uint64{}})
				lats = append(lats, latencyBins{})
			}
			for k, v := range s.perServer {
				out[i].PerServer[k] += v
			}
			lats[i].add(&s.lat)
		}
	}
	for i := range out {
		out[i].P50, out[i].P99 = lats[i].quantile(0.5), lats[i].quantile(0.99)
	}
	return out
}
