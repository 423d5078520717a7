package udpserver

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// burner keeps a fraction of one core busy inside the server's process, for
// demonstrations and tests of load-aware balancing. The CPU it uses is real:
// the sampler measures it like any other, and the status port reports what
// it measures. The fraction can change while the server runs.
type burner struct {
	frac atomic.Uint64 // float64 bits, 0 to 1
	kick chan struct{} // wakes an idle burner when the fraction rises from 0
}

// burnPeriod is one duty cycle: busy for frac of it, asleep for the rest.
// Long enough that Go's millisecond-late timers matter little, short enough
// that the load looks steady to a 100 ms sampler.
const burnPeriod = 20 * time.Millisecond

func newBurner(frac float64) *burner {
	b := &burner{kick: make(chan struct{}, 1)}
	b.set(frac)
	return b
}

func (b *burner) get() float64 { return math.Float64frombits(b.frac.Load()) }

// set changes the fraction; it is clamped to [0, 1].
func (b *burner) set(frac float64) {
	if math.IsNaN(frac) {
		frac = 0
	}
	b.frac.Store(math.Float64bits(math.Max(0, math.Min(1, frac))))
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *burner) run(ctx context.Context) {
	x := 1.0
	for ctx.Err() == nil {
		f := b.get()
		if f == 0 {
			select {
			case <-ctx.Done():
				return
			case <-b.kick:
			}
			continue
		}
		start := time.Now()
		busy := time.Duration(f * float64(burnPeriod))
		for time.Since(start) < busy {
			for range 2000 {
				x = math.Sqrt(x*1.0000001 + 1) // work the compiler cannot drop
			}
		}
		if rest := burnPeriod - time.Since(start); rest > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(rest):
			}
		}
	}
	sink.Store(math.Float64bits(x))
}

// sink keeps the burner's arithmetic alive.
var sink atomic.Uint64
