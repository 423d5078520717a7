package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var errClosed = errors.New("closed")

// fakeServer is a Serve/Shutdown pair that records what the daemon did.
type fakeServer struct {
	stop     chan struct{}
	drained  chan struct{}
	reloaded chan struct{}
	shutdown chan error // the context's error Shutdown saw
}

func newFake() *fakeServer {
	return &fakeServer{stop: make(chan struct{}), drained: make(chan struct{}, 1),
		reloaded: make(chan struct{}, 4), shutdown: make(chan error, 1)}
}

func (f *fakeServer) daemon(hold bool) Daemon {
	return Daemon{
		Name:   "fake",
		Serve:  func() error { <-f.stop; return errClosed },
		Closed: errClosed,
		Shutdown: func(ctx context.Context) error {
			if hold { // a shutdown that waits for its context: only a second signal or the timeout ends it
				<-ctx.Done()
			}
			f.shutdown <- ctx.Err()
			close(f.stop)
			return ctx.Err()
		},
		Drain:       func() { f.drained <- struct{}{} },
		Grace:       time.Hour, // only a second signal cuts it short
		Reload:      func() { f.reloaded <- struct{}{} },
		StopTimeout: time.Hour,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
	}
}

// TestDaemonSignals: SIGHUP reloads and never stops; SIGTERM drains; a
// second SIGTERM ends the grace, a third cuts Shutdown short; exit 0.
func TestDaemonSignals(t *testing.T) {
	f := newFake()
	sig := make(chan os.Signal, 8)
	code := make(chan int, 1)
	go func() { code <- f.daemon(true).run(sig) }()

	sig <- syscall.SIGHUP
	within(t, f.reloaded, "reload on SIGHUP")
	sig <- syscall.SIGHUP
	within(t, f.reloaded, "reload on a second SIGHUP")
	select {
	case c := <-code:
		t.Fatalf("SIGHUP ended the daemon with %d", c)
	default:
	}
	sig <- syscall.SIGTERM
	within(t, f.drained, "drain on SIGTERM")
	sig <- syscall.SIGHUP // during the grace: reloads, does not stop
	within(t, f.reloaded, "reload during the grace")
	sig <- syscall.SIGTERM // ends the grace
	sig <- syscall.SIGTERM // cuts Shutdown short
	select {
	case err := <-f.shutdown:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown's context ended with %v, want canceled by the signal", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a third signal did not cut Shutdown short")
	}
	if c := <-code; c != 0 {
		t.Fatalf("exit %d, want 0", c)
	}
}

// TestDaemonServeFails: Serve ending on its own is exit 1, signal or not.
func TestDaemonServeFails(t *testing.T) {
	d := Daemon{Name: "fake", Closed: errClosed, Logger: slog.New(slog.DiscardHandler),
		Serve:    func() error { return errors.New("socket closed") },
		Shutdown: func(context.Context) error { t.Error("Shutdown called"); return nil }}
	if c := d.run(make(chan os.Signal)); c != 1 {
		t.Fatalf("exit %d, want 1", c)
	}
}

// TestDaemonNoDrain: without Drain, SIGINT goes straight to Shutdown.
func TestDaemonNoDrain(t *testing.T) {
	f := newFake()
	d := f.daemon(false)
	d.Drain, d.Reload = nil, nil
	sig := make(chan os.Signal, 2)
	sig <- syscall.SIGHUP // logged, nothing to reload
	sig <- os.Interrupt
	if c := d.run(sig); c != 0 {
		t.Fatalf("exit %d", c)
	}
	if err := <-f.shutdown; err != nil {
		t.Fatalf("Shutdown's context: %v", err)
	}
}

// TestLameDuck: ready as the library says until Drain, then not ready,
// with a reason, whatever the library says.
func TestLameDuck(t *testing.T) {
	notReady := func() (bool, string) { return false, "no server in rotation" }
	tests := []struct {
		name       string
		inner      ReadyFunc
		drained    bool
		wantOK     bool
		wantReason string
	}{
		{"nil inner", nil, false, true, ""},
		{"inner ready", func() (bool, string) { return true, "" }, false, true, ""},
		{"inner not ready", notReady, false, false, "no server in rotation"},
		{"drained, inner ready", func() (bool, string) { return true, "" }, true, false, "draining"},
		{"drained, inner not ready", notReady, true, false, "draining"},
		{"drained, nil inner", nil, true, false, "draining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLameDuck(tt.inner)
			if tt.drained {
				l.Drain()
			}
			ok, reason := l.Ready()
			if ok != tt.wantOK || !strings.HasPrefix(reason, tt.wantReason) {
				t.Fatalf("Ready() = %v, %q; want %v, %q...", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

// TestDaemonLameDuckGrace: after SIGTERM the daemon is not ready at once
// and goes on serving through the grace: Shutdown comes no sooner than the
// grace after Drain, and finds the daemon not ready; then exit 0.
func TestDaemonLameDuckGrace(t *testing.T) {
	f := newFake()
	d := f.daemon(false)
	lame := NewLameDuck(nil)
	const grace = 300 * time.Millisecond
	var drainedAt time.Time
	d.Drain = func() { drainedAt = time.Now(); lame.Drain() }
	d.Grace = grace
	shutdown := d.Shutdown
	var sinceDrain time.Duration
	var readyAtShutdown bool
	d.Shutdown = func(ctx context.Context) error {
		sinceDrain = time.Since(drainedAt)
		readyAtShutdown, _ = lame.Ready()
		return shutdown(ctx)
	}
	if ok, _ := lame.Ready(); !ok {
		t.Fatal("not ready before any signal")
	}
	sig := make(chan os.Signal, 1)
	sig <- syscall.SIGTERM
	if c := d.run(sig); c != 0 {
		t.Fatalf("exit %d, want 0", c)
	}
	if sinceDrain < grace {
		t.Errorf("Shutdown %v after Drain, before the grace of %v was over", sinceDrain, grace)
	}
	if readyAtShutdown {
		t.Error("still ready when Shutdown began")
	}
	if err := <-f.shutdown; err != nil {
		t.Fatalf("Shutdown's context: %v", err)
	}
}
