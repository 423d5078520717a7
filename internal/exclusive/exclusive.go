// Package exclusive lets a test have the machine's CPUs to itself, as far as
// discal's other tests go.
//
// `go test ./...` runs packages side by side, one process each. Most tests
// do not mind; two kinds do. Tests that measure balance or timing (a burned
// server's share, an ejection within a second) judge what a real system
// does with the CPU it gets, and on a small machine a flood from another
// package leaves a burn of 0.8 of a core unable to burn, and every server
// equally slow. Tests that flood are what leaves it so. Both kinds call
// CPU first: it takes a lock on a file that every test process on the
// machine shares, so such tests run one at a time, across packages, while
// everything else still runs beside them. During does the same for a burst
// of CPU before a test, such as building the binaries it runs (a compiler
// is the heaviest neighbour a balance test can have).
package exclusive

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// lockPath is the file whose lock the tests share: one per machine (per
// temporary directory), whichever clone of discal the tests come from.
var lockPath = filepath.Join(os.TempDir(), "discal-tests-cpu.lock")

// The lock as this process holds it. A test that holds the machine may
// call code that asks for it again (a test's first call to a helper that
// builds the binaries): within one process it is held once and counted.
// discal's tests do not run in parallel within a package, so counting is
// all the exclusion a process needs.
var (
	mu    sync.Mutex
	held  int      // holders in this process
	owner *os.File // the locked file, while held > 0
)

// CPU waits until no other test that called CPU or During runs, in any
// process, and holds the machine for t until t ends. It fails t when the
// lock cannot be taken; where the system has no file locks it returns at
// once.
//
// Under -short it skips t, saying so: a test that needs the machine to
// itself floods or measures, and the quick suite leaves both out (the
// full suite runs them). Skipped, it takes no lock, so the quick suite
// never waits for another's full one.
func CPU(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("floods or measures, holding the machine (internal/exclusive): skipped under -short")
	}
	hold(t)
}

// hold is CPU without the skip.
func hold(t testing.TB) {
	t.Helper()
	t.Cleanup(acquire(t))
}

// During holds the machine as CPU does, for f alone: for a burst of CPU
// that a test needs before it starts, such as building the binaries it
// runs, which would otherwise starve another package's test of its cores.
func During(t testing.TB, f func()) {
	t.Helper()
	release := acquire(t)
	defer release()
	f()
}

// acquire takes the lock, or counts one more holder if this process has
// it, and returns what gives it back.
func acquire(t testing.TB) (release func()) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if held == 0 {
		owner = take(t)
	}
	held++
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if held--; held == 0 {
			owner.Close() // closing the file releases the lock, also when the process dies
			owner = nil
		}
	}
}

// take opens the lock file and waits for its lock.
func take(t testing.TB) *os.File {
	t.Helper()
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		f, err = os.Open(lockPath) // another user's file: a lock needs no write access
	}
	if err != nil {
		t.Fatalf("exclusive: %v", err)
	}
	began := time.Now()
	if err := lock(f); err != nil {
		f.Close()
		t.Fatalf("exclusive: lock %s: %v", lockPath, err)
	}
	if waited := time.Since(began); waited > time.Second {
		t.Logf("exclusive: waited %v for the other tests that need the CPUs", waited.Round(time.Millisecond))
	}
	return f
}
