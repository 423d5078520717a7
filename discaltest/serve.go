package discaltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// One part at a time, for tests that need a real server or proxy and not a
// whole Cluster: each runs on new sockets on 127.0.0.1:0 until the test
// ends, is then shut down, and fails the test if Serve ends any other way
// than with ErrServerClosed.

// shutdownTimeout bounds the wait for a part to stop at the end of a test.
const shutdownTimeout = 5 * time.Second

// StartServer runs a udpserver for cfg, with its per-operation log off and
// its log discarded unless cfg.Logger is set, and returns it with its
// calculator and status addresses.
func StartServer(t testing.TB, cfg udpserver.Config) (s *udpserver.Server, calc, status *net.UDPAddr) {
	t.Helper()
	cfg.Quiet = true
	if cfg.Logger == nil {
		cfg.Logger = Quiet()
	}
	s, err := udpserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	calcConn, statusConn := listen(t), listen(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(calcConn, statusConn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, udpserver.ErrServerClosed) {
			t.Errorf("server Serve returned %v", err)
		}
	})
	return s, calcConn.LocalAddr().(*net.UDPAddr), statusConn.LocalAddr().(*net.UDPAddr)
}

// StartProxy runs a udpproxy for cfg, its log discarded unless cfg.Logger
// is set, and returns it with its client-facing address.
func StartProxy(t testing.TB, cfg udpproxy.Config) (*udpproxy.Proxy, *net.UDPAddr) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = Quiet()
	}
	p, err := udpproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := listen(t)
	ServeProxy(t, p, conn)
	return p, conn.LocalAddr().(*net.UDPAddr)
}

// ServeProxy serves p on conn, a socket the test opened (and may have used
// already), until the test ends. It returns once p serves (WaitServing).
func ServeProxy(t testing.TB, p *udpproxy.Proxy, conn net.PacketConn) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Serve(conn) }()
	if err := WaitServing(p, done); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, udpproxy.ErrServerClosed) {
			t.Errorf("proxy Serve returned %v", err)
		}
	})
}

// WaitServing waits until p, whose Serve runs and returns into done, says
// where it listens (Addr): it has then set its socket up, and what is sent
// from then on is read as it will be, and a dashboard or a client asking
// Addr finds the port. It fails if Serve returns first (its error is put
// back into done), or after 10 s.
func WaitServing(p *udpproxy.Proxy, done chan error) error {
	end := time.Now().Add(10 * time.Second)
	for p.Addr() == nil {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("discaltest: the proxy's Serve returned before serving: %w", err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(end) {
			return errors.New("discaltest: the proxy does not serve after 10 s")
		}
	}
	return nil
}

func listen(t testing.TB) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
