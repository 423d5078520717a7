package exclusive

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMachineBusySeesSpinning: with every core this process may use
// spinning, the machine reads as at least mostly that busy (other processes
// can only add).
func TestMachineBusySeesSpinning(t *testing.T) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0) // fewer than the machine's cores under a CPU limit
	for range procs {
		wg.Go(func() {
			for !stop.Load() {
			}
		})
	}
	busy, ok := machineBusy(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if !ok {
		t.Fatal("no reading from /proc/stat")
	}
	floor := 0.6 * float64(min(procs, runtime.NumCPU())) / float64(runtime.NumCPU())
	if busy < floor || busy > 1 {
		t.Errorf("busy %.2f with %d of %d cores spinning; want between %.2f and 1", busy, procs, runtime.NumCPU(), floor)
	}
}
