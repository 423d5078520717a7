package exclusive

import (
	"sync"
	"testing"
)

// raisedNice is the niceness Raise gives a process: well above the
// compilers and tests beside it (nice 0), whose threads then get about a
// tenth of the CPU time each of its threads gets when both want it.
const raisedNice = -10

// refusedOnce says once per test process that Raise may not raise.
var refusedOnce sync.Once

// Raise puts the process pid above the rest of the machine (nice -10)
// where the system lets the test (root, on Linux), for a test whose
// figures are what that process does with the CPU it gets. Quiet waits
// until the machine is quiet before such a test; a neighbour that starts
// after (a compiler, another package's test, another tenant) can still
// take the CPU a burn of 0.8 of a core needs, and the test then judges the
// neighbour. Raised, the burn happens. Where it may not raise, the test
// runs as before, and says so once.
func Raise(t testing.TB, pid int) {
	t.Helper()
	if err := raise(pid, raisedNice); err != nil {
		refusedOnce.Do(func() {
			t.Logf("exclusive: cannot raise the processes under test (%v): their neighbours may take the CPU they measure", err)
		})
	}
}
