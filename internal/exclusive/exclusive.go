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
// everything else still runs beside them.
package exclusive

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// lockPath is the file whose lock the tests share: one per machine (per
// temporary directory), whichever clone of discal the tests come from.
var lockPath = filepath.Join(os.TempDir(), "discal-tests-cpu.lock")

// CPU waits until no other test that called CPU runs, in any process, and
// holds the machine for t until t ends. It fails t when the lock cannot
// be taken; where the system has no file locks it returns at once.
func CPU(t testing.TB) {
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
	// Closing the file releases the lock, also when the process dies.
	t.Cleanup(func() { f.Close() })
}
