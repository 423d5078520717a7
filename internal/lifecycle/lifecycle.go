// Package lifecycle is the start-and-stop bookkeeping that discal's server
// and proxy share, in the shape of net/http: Serve runs until Shutdown (which
// lets work in progress finish) or Close (which does not), then returns the
// package's ErrServerClosed; a Serve called twice, or after a stop, returns
// it at once. It also makes Serve end, with an error, when a socket it reads
// fails or is closed under it, rather than wait for a Shutdown nobody sends.
//
// A server embeds a Life and follows this pattern:
//
//	func (s *Server) Serve(conn net.PacketConn) error {
//		if !s.life.Start(func() { lifecycle.WakeReads(conn) }) {
//			conn.Close()
//			return ErrServerClosed
//		}
//		// start the loops; on a read error a loop calls
//		//	if s.life.Stopping() { return }          // Shutdown or Close woke it
//		//	if errors.Is(err, net.ErrClosed) { s.life.Fail(err); return }
//		// wait for the loops, close the sockets, then:
//		return s.life.Finish(ErrServerClosed)
//	}
//
//	func (s *Server) Shutdown(ctx context.Context) error {
//		if !s.life.Stop() {
//			return nil // never served
//		}
//		return s.life.Wait(ctx, func() { conn.Close() }) // force: what ends Serve at once
//	}
//
//	func (s *Server) Close() error { return lifecycle.Close(s.Shutdown) }
//
// The zero Life is idle and ready to use. Its methods are safe for
// concurrent use.
package lifecycle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Life is one server's state: idle, serving, stopping, finished.
type Life struct {
	stopping atomic.Bool // read on every read error, so without the lock

	mu       sync.Mutex
	serving  bool          // Start succeeded
	finished bool          // Finish was called
	wake     func()        // unblocks the loops; set by Start
	failure  error         // the first Fail, Serve's result
	done     chan struct{} // closed by Finish; made on first use
}

// Start moves an idle Life to serving and keeps wake, which Stop and Fail
// call (once) to unblock the loops: typically WakeReads on the sockets. It
// returns false when Serve already ran or a stop came first; the caller
// then closes what it was given and returns its ErrServerClosed.
func (l *Life) Start(wake func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.serving || l.stopping.Load() {
		return false
	}
	l.serving, l.wake = true, wake
	return true
}

// Serving reports whether Serve is running and no stop was asked for.
func (l *Life) Serving() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.serving && !l.finished && !l.stopping.Load()
}

// Stopping reports whether Stop or Fail was called. A loop checks it on a
// read error: when true the error is the wake-up, and the loop ends.
func (l *Life) Stopping() bool { return l.stopping.Load() }

// Stop asks the loops to end: it marks the Life stopping, so that a later
// Start fails, and calls wake. It reports whether Serve started, in which
// case the caller waits for it with Wait or Done.
func (l *Life) Stop() (started bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLocked()
	return l.serving
}

// stopLocked calls wake the first time only: a wake that sets a deadline
// must not be repeated after the sockets are closed, though doing so would
// be harmless.
func (l *Life) stopLocked() {
	if l.stopping.Swap(true) || !l.serving || l.finished {
		return
	}
	if l.wake != nil {
		l.wake()
	}
}

// Fail records err as the reason Serve ends, unless a stop or another
// failure came first, and stops the Life. A loop calls it when its socket
// failed or was closed under it: the other loops must end too, and Serve
// return err.
func (l *Life) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopping.Load() && l.failure == nil {
		l.failure = err
	}
	l.stopLocked()
}

// Err returns the error given to Fail, nil while nothing failed. A server
// whose loops end in stages (the proxy: client readers first, the rest once
// pending requests are done) checks it to skip the wait for work that a
// failure has cut off.
func (l *Life) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failure
}

// Finish is Serve's last call, once its loops have ended and its sockets
// are closed. It closes Done and returns what Serve returns: the error
// given to Fail, or closed (the package's ErrServerClosed).
func (l *Life) Finish(closed error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finished = true
	l.stopping.Store(true)
	close(l.doneLocked())
	if l.failure != nil {
		return l.failure
	}
	return closed
}

// Done is closed when Serve has finished.
func (l *Life) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.doneLocked()
}

func (l *Life) doneLocked() chan struct{} {
	if l.done == nil {
		l.done = make(chan struct{})
	}
	return l.done
}

// Wait waits until Serve has finished. If ctx ends first it calls force,
// which must make Serve end at once (close the sockets, cancel the work),
// waits for that, and returns ctx.Err().
func (l *Life) Wait(ctx context.Context, force func()) error {
	done := l.Done()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	force()
	<-done
	return ctx.Err()
}

// Close runs shutdown with a context that has already ended: the server
// stops at once. context.Canceled, which that always yields, is not an
// error here.
func Close(shutdown func(context.Context) error) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Deadliner is a socket whose reads can be woken: net.PacketConn,
// *net.UDPConn and net.Conn all are.
type Deadliner interface{ SetReadDeadline(time.Time) error }

// past is a read deadline long gone: it wakes a blocked read at once.
var past = time.Unix(1, 0)

// WakeReads makes every read blocked on conns, and every later one, return
// a timeout at once, without closing the sockets: a loop that is handling a
// datagram finishes it and can still send the answer. Nil entries are
// skipped.
func WakeReads(conns ...Deadliner) {
	for _, c := range conns {
		if c != nil {
			_ = c.SetReadDeadline(past)
		}
	}
}
