//go:build unix

package exclusive

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMain lets this test binary stand in for another test process: with
// EXCLUSIVE_PROBE set, it tries the lock once without waiting and exits 0
// if it got it, 3 if it is held; with EXCLUSIVE_THREADS set, it is
// threads().
func TestMain(m *testing.M) {
	if p := os.Getenv("EXCLUSIVE_PROBE"); p != "" {
		os.Exit(probe(p))
	}
	if os.Getenv("EXCLUSIVE_THREADS") != "" {
		os.Exit(threads())
	}
	os.Exit(m.Run())
}

func probe(path string) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	got, err := tryLock(f)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	case !got:
		return 3
	}
	return 0
}

// otherProcessGets runs the probe and says whether it got the lock.
func otherProcessGets(t *testing.T) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "EXCLUSIVE_PROBE="+lockPath)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 3:
		return false
	}
	t.Fatalf("probe: %v: %s", err, out)
	return false
}

// TestCPUExcludesOtherProcesses: while a test holds the machine, another
// process cannot take it; once that test ends, it can.
func TestCPUExcludesOtherProcesses(t *testing.T) {
	lockPath = filepath.Join(t.TempDir(), "cpu.lock")
	t.Run("holder", func(t *testing.T) {
		hold(t)
		if otherProcessGets(t) {
			t.Error("another process took the lock while this test held it")
		}
	})
	if !otherProcessGets(t) {
		t.Error("another process could not take the lock after the holder ended")
	}
}

// TestDuringWithinCPU: a test that holds the machine can call During (a
// helper that builds binaries) without waiting for itself; the machine
// stays held until the test ends, and During alone holds it only while f
// runs.
func TestDuringWithinCPU(t *testing.T) {
	lockPath = filepath.Join(t.TempDir(), "cpu.lock")
	t.Run("holder", func(t *testing.T) {
		hold(t)
		ran := false
		During(t, func() { ran = true })
		if !ran {
			t.Fatal("During did not run f")
		}
		if otherProcessGets(t) {
			t.Error("the lock was let go when During returned, inside a test that holds it")
		}
	})
	During(t, func() {
		if otherProcessGets(t) {
			t.Error("another process took the lock while During ran")
		}
	})
	if !otherProcessGets(t) {
		t.Error("another process could not take the lock after During returned")
	}
}

// TestCPUSkipsUnderShort: under -short, CPU skips the test and takes no
// lock; without it, it holds the machine (the tests above).
func TestCPUSkipsUnderShort(t *testing.T) {
	if !testing.Short() {
		t.Skip("what CPU does under -short: run with -short")
	}
	lockPath = filepath.Join(t.TempDir(), "cpu.lock")
	var sub *testing.T
	t.Run("heavy", func(t *testing.T) {
		sub = t
		CPU(t)
		t.Error("CPU returned under -short")
	})
	if !sub.Skipped() {
		t.Error("the test that called CPU was not skipped")
	}
	if _, err := os.Stat(lockPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a skipped test opened the lock file (%v)", err)
	}
}

// tryLock takes the lock if it is free and reports whether it did.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch err {
	case nil:
		return true, nil
	case syscall.EWOULDBLOCK:
		return false, nil
	}
	return false, err
}
