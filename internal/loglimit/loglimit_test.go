package loglimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOncePerInterval(t *testing.T) {
	var l Limit
	steps := []struct {
		at   int64
		want bool
	}{
		{0, true}, // a clock that starts at zero still logs the first line
		{1, false},
		{int64(Interval) - 1, false},
		{int64(Interval) + 1, true},
		{int64(Interval) + 2, false},
		{3 * int64(Interval), true},
	}
	for _, s := range steps {
		if got := l.AllowAt(s.at); got != s.want {
			t.Fatalf("AllowAt(%v) = %v, want %v", time.Duration(s.at), got, s.want)
		}
	}
}

// TestConcurrentFirst: of many goroutines that ask at once, one logs.
func TestConcurrentFirst(t *testing.T) {
	var l Limit
	var n atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if l.Allow() {
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if n.Load() != 1 {
		t.Fatalf("%d of 32 logged at once, want 1", n.Load())
	}
}
