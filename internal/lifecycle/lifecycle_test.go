package lifecycle

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
)

var errClosed = errors.New("test: closed")

// serve is a minimal server over one socket, written as the package doc
// says: it reads until its Life stops, or fails when the socket goes.
type server struct {
	life Life
	conn net.PacketConn
}

func (s *server) serve() error {
	if !s.life.Start(func() { WakeReads(s.conn) }) {
		s.conn.Close()
		return errClosed
	}
	buf := make([]byte, 64)
	for {
		_, _, err := s.conn.ReadFrom(buf)
		if err == nil {
			continue
		}
		if s.life.Stopping() {
			break
		}
		if errors.Is(err, net.ErrClosed) {
			s.life.Fail(err)
			break
		}
	}
	s.conn.Close()
	return s.life.Finish(errClosed)
}

func (s *server) shutdown(ctx context.Context) error {
	if !s.life.Stop() {
		return nil
	}
	return s.life.Wait(ctx, func() { s.conn.Close() })
}

func newServer(t *testing.T) (*server, chan error) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{conn: conn}
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	// Serving is true once Start ran: wait for it, with a bound.
	eventually.True(t, 5*time.Second, "Serving", s.life.Serving)
	return s, done
}

func result(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return")
		return nil
	}
}

func TestShutdownEndsServe(t *testing.T) {
	s, done := newServer(t)
	if err := s.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); !errors.Is(err, errClosed) || s.life.Err() != nil {
		t.Fatalf("serve returned %v, Err %v; want errClosed and no failure", err, s.life.Err())
	}
	if s.life.Serving() {
		t.Fatal("still serving after Finish")
	}
	// A second Serve on the same Life is refused, and a second Shutdown
	// does not wait.
	conn, _ := net.ListenPacket("udp", "127.0.0.1:0")
	s.conn = conn
	if err := s.serve(); !errors.Is(err, errClosed) {
		t.Fatalf("second serve: %v", err)
	}
	if err := s.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestClosedSocketFailsServe(t *testing.T) {
	s, done := newServer(t)
	s.conn.Close() // under the server, with no Shutdown
	err := result(t, done)
	if !errors.Is(err, net.ErrClosed) || !errors.Is(s.life.Err(), net.ErrClosed) {
		t.Fatalf("serve returned %v, Err %v; want net.ErrClosed", err, s.life.Err())
	}
	if err := s.shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown after a failure: %v", err)
	}
}

// TestWaitForces: when the context ends before Serve does, Wait calls
// force and reports the context's error.
func TestWaitForces(t *testing.T) {
	var l Life
	if !l.Start(func() {}) { // a wake that wakes nothing: only force ends it
		t.Fatal("Start refused")
	}
	forced := make(chan struct{})
	go func() {
		<-forced
		l.Finish(errClosed)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	l.Stop()
	if err := l.Wait(ctx, func() { close(forced) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v", err)
	}
}

func TestStopBeforeStart(t *testing.T) {
	var l Life
	if l.Stop() {
		t.Fatal("Stop of an idle Life says it started")
	}
	if l.Start(func() {}) {
		t.Fatal("Start after Stop succeeded")
	}
	if err := Close(func(ctx context.Context) error { return ctx.Err() }); err != nil {
		t.Fatalf("Close reported %v", err)
	}
	want := errors.New("x")
	if err := Close(func(context.Context) error { return want }); err != want {
		t.Fatalf("Close hid %v", err)
	}
}

func TestWakeReads(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	WakeReads(conn, nil)
	if _, _, err := conn.ReadFrom(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after WakeReads: %v", err)
	}
}
