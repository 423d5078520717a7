package flood

import (
	"testing"
	"time"
)

// TestLatencyBins checks that every latency falls in a bin whose end is
// at least it and at most a quarter above it, bins in order.
func TestLatencyBins(t *testing.T) {
	prev := 0
	for us := int64(1); us < 1<<26; us += 1 + us/7 {
		b := latBin(us)
		if b < prev {
			t.Fatalf("latBin(%d) = %d, below latBin of a smaller latency (%d)", us, b, prev)
		}
		prev = b
		if b == latBins-1 {
			continue // the last bin takes everything above
		}
		if up := latUpper(b); up < us || float64(up) > 1.25*float64(us) {
			t.Fatalf("latBin(%d) = %d, which ends at %d", us, b, up)
		}
	}
}

func TestLatencyQuantile(t *testing.T) {
	var l latencyBins
	if got := l.quantile(0.5); got != 0 {
		t.Errorf("empty quantile = %v, want 0", got)
	}
	for us := int64(1); us <= 100; us++ {
		l[latBin(us*100)]++ // 100 us to 10 ms, evenly
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}} {
		got := l.quantile(c.q)
		if got < c.want || float64(got) > 1.25*float64(c.want) {
			t.Errorf("quantile(%v) = %v, want %v to 1.25x it", c.q, got, c.want)
		}
	}
}
