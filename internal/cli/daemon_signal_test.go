//go:build unix

package cli

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestDaemonCatchesSignalsBeforeStarted: a real SIGHUP sent to this process
// from Started, where a daemon announces itself, is handled (Reload), not
// left to the default action, which would end this test binary; a real
// SIGTERM then stops it with 0.
func TestDaemonCatchesSignalsBeforeStarted(t *testing.T) {
	f := newFake()
	d := f.daemon(false)
	d.Drain = nil
	d.Started = func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Error(err)
		}
	}
	code := make(chan int, 1)
	go func() { code <- d.Run() }()
	within(t, f.reloaded, "reload on the SIGHUP sent from Started")
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not stop the daemon within 5s")
	}
}
