package exclusive

import (
	"testing"
	"time"
)

// quietBusy is the share of the machine's CPU time that others may still
// use for it to count as quiet: a fifth, 0.4 of a core on two cores, what
// a linker or a light test leaves.
const quietBusy = 0.2

// quietWindow is how long one look at the machine lasts.
const quietWindow = 250 * time.Millisecond

// quietLimit bounds the wait: a machine that never quiets (a busy CI host
// shared with other jobs) gets the test anyway, and the test says so.
const quietLimit = 60 * time.Second

// Quiet is CPU, and then it waits until the rest of the machine is nearly
// idle, for tests whose figures are a share of the CPU: a burn of 0.8 of
// a core that the scheduler cannot give, or servers all slowed alike by a
// neighbour, make a balance test judge the neighbour. The lock keeps
// discal's own heavy tests away; this waits out what does not take it
// (the go command compiling and linking the next test binaries, the light
// tests of other packages). It waits at most a minute; where the system
// does not say how busy it is, it returns after CPU. Under -short it skips
// t, as CPU does.
func Quiet(t testing.TB) {
	t.Helper()
	CPU(t)
	began := time.Now()
	busy := -1.0
	for time.Since(began) < quietLimit {
		b, ok := machineBusy(quietWindow)
		if !ok {
			return
		}
		if busy = b; busy < quietBusy {
			if waited := time.Since(began); waited > time.Second {
				t.Logf("exclusive: waited %v for the machine to quiet down", waited.Round(time.Millisecond))
			}
			return
		}
	}
	t.Logf("exclusive: the machine stayed busy for %v (%.0f%% of its CPU time at the last look); the test runs anyway", quietLimit, 100*busy)
}
