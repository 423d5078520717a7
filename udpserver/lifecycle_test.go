package udpserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
	"github.com/prometheus/client_golang/prometheus"
)

// serveOn starts a server on the two sockets and returns Serve's result
// channel; cleanup closes the server.
func serveOn(t *testing.T, cfg Config, calc, status net.PacketConn) (*Server, chan error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Quiet = true
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(calc, status) }()
	t.Cleanup(func() { s.Close() })
	return s, served
}

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServeEndsWhenItsSocketCloses: a socket closed under the server (not
// by Shutdown) ends Serve with an error, whichever socket it was, and the
// other port stops too.
func TestServeEndsWhenItsSocketCloses(t *testing.T) {
	for _, which := range []string{"calculator", "status"} {
		t.Run(which, func(t *testing.T) {
			calc, status := listen(t), listen(t)
			s, served := serveOn(t, Config{}, calc, status)
			eventually.True(t, 5*time.Second, "Ready", func() bool { ok, _ := s.Ready(); return ok })
			if which == "calculator" {
				calc.Close()
			} else {
				status.Close()
			}
			select {
			case err := <-served:
				if !errors.Is(err, net.ErrClosed) || errors.Is(err, ErrServerClosed) {
					t.Fatalf("Serve returned %v, want net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve still running 5s after its socket was closed")
			}
			if ok, reason := s.Ready(); ok || reason != "not serving" {
				t.Fatalf("Ready after the failure = %v, %q", ok, reason)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown after the failure: %v", err)
			}
		})
	}
}

// packetConn hides the *net.UDPConn behind the net.PacketConn interface,
// as a wrapper that counts or filters would.
type packetConn struct{ net.PacketConn }

// TestServeAnyPacketConn: Serve takes net.PacketConn, and any one serves
// both ports, not only *net.UDPConn.
func TestServeAnyPacketConn(t *testing.T) {
	calc, status := listen(t), listen(t)
	s, served := serveOn(t, Config{Name: "w1"}, packetConn{calc}, packetConn{status})
	c := dial(t, calc.LocalAddr().(*net.UDPAddr))
	if got := string(exchange(t, c, []byte("6 * 7"))); got != "42\n" {
		t.Fatalf("calculator port answered %q", got)
	}
	got := exchange(t, c, codec.AppendRequest(nil, 9, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(2), B: codec.IntNumber(3)}))
	rep, err := codec.DecodeReply(got[codec.HeaderSize:])
	if err != nil || rep.Result.String() != "5" || rep.Server != "w1" {
		t.Fatalf("binary reply %+v, %v", rep, err)
	}
	st := dial(t, status.LocalAddr().(*net.UDPAddr))
	if line := string(exchange(t, st, []byte("status"))); !strings.HasPrefix(line, "server=w1 ") {
		t.Fatalf("status port answered %q", line)
	}
	if s.Status().CalcPort != uint16(calc.LocalAddr().(*net.UDPAddr).Port) {
		t.Fatalf("calc port %d", s.Status().CalcPort)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
}

func TestReady(t *testing.T) {
	s, err := New(Config{Quiet: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if ok, reason := s.Ready(); ok || reason != "not serving" {
		t.Fatalf("before Serve: %v, %q", ok, reason)
	}
	served := make(chan error, 1)
	calc, status := listen(t), listen(t)
	go func() { served <- s.Serve(calc, status) }()
	eventually.True(t, 5*time.Second, "ready once serving", func() bool { ok, _ := s.Ready(); return ok })
	s.Drain()
	if ok, reason := s.Ready(); ok || reason != "draining" {
		t.Fatalf("draining: %v, %q", ok, reason)
	}
	s.Undrain()
	if ok, _ := s.Ready(); !ok {
		t.Fatal("not ready after Undrain")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-served
	if ok, _ := s.Ready(); ok {
		t.Fatal("ready after Close")
	}
}

// TestMetricsNameDefaultsToAddress: with no Config.Name, the metrics of a
// serving server carry its calculator address, never server="".
func TestMetricsNameDefaultsToAddress(t *testing.T) {
	calc, status := listen(t), listen(t)
	s, _ := serveOn(t, Config{}, calc, status)
	eventually.True(t, 5*time.Second, "serving", func() bool { ok, _ := s.Ready(); return ok })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := calc.LocalAddr().String()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" && l.GetValue() != want {
					t.Fatalf("%s has server=%q, want %q", mf.GetName(), l.GetValue(), want)
				}
			}
		}
	}
	if len(mfs) == 0 {
		t.Fatal("no metrics")
	}
}

// TestRejoin: Rejoin sends a join at once, not at the next interval.
func TestRejoin(t *testing.T) {
	proxy := listen(t)
	defer proxy.Close()
	calc, status := listen(t), listen(t)
	s, _ := serveOn(t, Config{Join: []string{proxy.LocalAddr().String()}, JoinInterval: time.Hour}, calc, status)
	buf := make([]byte, codec.MaxDatagram)
	for i := range 2 {
		if i == 1 {
			s.Rejoin()
		}
		_ = proxy.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := proxy.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("join %d: %v", i+1, err)
		}
		if h, err := codec.ParseHeader(buf[:n]); err != nil || h.Kind != codec.KindJoin {
			t.Fatalf("join %d: %x", i+1, buf[:n])
		}
	}
}
