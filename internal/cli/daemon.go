package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// LameDuck is the draining state of a daemon whose library keeps none,
// udpproxy's: set it as the Daemon's Drain and hand Ready to NewHTTP. From
// the first stop signal /readyz says 503, while the daemon goes on
// answering for the Daemon's Grace: Kubernetes takes a pod that is not
// ready out of its Service, and kube-proxy moves new traffic elsewhere
// before the socket closes, so that nothing sent in the meantime is lost.
type LameDuck struct {
	ready    ReadyFunc   // the library's own readiness; nil: ready
	draining atomic.Bool // written by Drain alone, which the Daemon calls
}

// NewLameDuck wraps ready, the library's own readiness (nil: always ready).
func NewLameDuck(ready ReadyFunc) *LameDuck { return &LameDuck{ready: ready} }

// Drain marks the daemon as going: Ready is false from now on.
func (l *LameDuck) Drain() { l.draining.Store(true) }

// Ready is a ReadyFunc: not ready once Drain was called, else the
// library's answer.
func (l *LameDuck) Ready() (ok bool, reason string) {
	if l.draining.Load() {
		return false, "draining: stopping after the grace, still answering until then"
	}
	if l.ready == nil {
		return true, ""
	}
	return l.ready()
}

// Daemon is how udpserver and udpproxy live between signals, written once:
//
//	SIGINT, SIGTERM  Drain (when set) for Grace, then Shutdown: work in
//	                 progress finishes. Another one during either stops at once.
//	                 During the grace the daemon still answers; only its
//	                 readiness says it is going (a server's status says
//	                 draining, /readyz says 503; see LameDuck).
//	SIGHUP           logged and handed to Reload; it never ends the process
//	                 (operators of nginx, HAProxy and CoreDNS send it by reflex).
//
// Run returns the exit status: 0 when a signal stopped the daemon cleanly,
// 1 when Serve failed.
type Daemon struct {
	// Name starts the log lines: "udpserver".
	Name string
	// Serve runs the daemon until Shutdown, then returns Closed.
	Serve func() error
	// Closed is what Serve returns after a Shutdown: the package's
	// ErrServerClosed.
	Closed error
	// Shutdown stops the daemon, letting work in progress finish, until
	// its context ends.
	Shutdown func(context.Context) error
	// Drain, when set, is called at the first stop signal, Grace before
	// Shutdown: a server reports draining so that proxies send no new work;
	// a proxy's LameDuck turns /readyz to 503 so that kube-proxy sends it
	// no new clients.
	Drain func()
	Grace time.Duration
	// Reload is called on SIGHUP, after the signal is logged. Nil: the log
	// line says there is nothing to reload.
	Reload func()
	// Started, when set, is called once the signals are caught and before
	// Serve: where a daemon announces itself, so that a signal sent by
	// whoever read the announcement is handled, never the default action
	// (SIGHUP's is to end the process).
	Started func()
	// StopTimeout bounds Shutdown. Default DefaultStopTimeout.
	StopTimeout time.Duration
	// Logger receives the daemon's lines. Default slog.Default().
	Logger *slog.Logger
}

// DefaultStopTimeout bounds a daemon's Shutdown, after its drain grace: a
// supervisor's stop timeout (Kubernetes' terminationGracePeriodSeconds,
// systemd's TimeoutStopSec) must be longer than the two together.
const DefaultStopTimeout = 10 * time.Second

// Run serves until a stop signal, then stops; see Daemon.
func (d Daemon) Run() int {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	return d.run(sig)
}

// run is Run with the signals handed in, for tests.
func (d Daemon) run(sig <-chan os.Signal) int {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.StopTimeout == 0 {
		d.StopTimeout = DefaultStopTimeout
	}
	if d.Started != nil {
		d.Started()
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve() }()

	s, ended, err := d.waitStop(sig, done, nil)
	if ended {
		d.Logger.Error(d.Name+" stopped", "err", err)
		return 1
	}
	if d.Drain != nil {
		// Lame duck first: proxies see "draining" at their next poll and
		// send no new work; what they sent is answered. Then stop.
		d.Logger.Info(d.Name+" draining", "signal", s.String(), "grace", d.Grace.String())
		d.Drain()
		grace := time.NewTimer(d.Grace)
		_, ended, err = d.waitStop(sig, done, grace.C)
		grace.Stop()
		if ended {
			d.Logger.Error(d.Name+" stopped", "err", err)
			return 1
		}
		d.Logger.Info(d.Name + " stopping")
	} else {
		d.Logger.Info(d.Name+" draining", "signal", s.String())
	}
	return d.stop(sig, done)
}

// waitStop waits for a stop signal, which it returns, or for timeout,
// handling SIGHUP on the way. ended says Serve returned first, with err.
func (d Daemon) waitStop(sig <-chan os.Signal, done <-chan error, timeout <-chan time.Time) (s os.Signal, ended bool, err error) {
	for {
		select {
		case err := <-done:
			return nil, true, err
		case <-timeout:
			return nil, false, nil
		case s := <-sig:
			if s != syscall.SIGHUP {
				return s, false, nil
			}
			d.hangup()
		}
	}
}

func (d Daemon) hangup() {
	if d.Reload == nil {
		d.Logger.Info(d.Name+" got SIGHUP: nothing to reload; it goes on serving", "signal", "hangup")
		return
	}
	d.Logger.Info(d.Name+" got SIGHUP: reloading; it goes on serving", "signal", "hangup")
	d.Reload()
}

// stop shuts the daemon down; a further stop signal cuts the wait short.
func (d Daemon) stop(sig <-chan os.Signal, done <-chan error) int {
	ctx, cancel := context.WithTimeout(context.Background(), d.StopTimeout)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sig:
				if s == syscall.SIGHUP {
					d.hangup()
					continue
				}
				d.Logger.Info(d.Name+" stopping now", "signal", s.String())
				cancel()
				return
			}
		}
	}()
	if err := d.Shutdown(ctx); err != nil {
		d.Logger.Warn(d.Name+" shutdown", "err", err)
	}
	cancel()
	<-watched
	if err := <-done; !errors.Is(err, d.Closed) {
		d.Logger.Error(d.Name+" stopped", "err", err)
		return 1
	}
	return 0
}
