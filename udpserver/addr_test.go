package udpserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
)

// TestAddr: a server started on port 0 says where it listens, on both
// ports, once Serve has started; nil before.
func TestAddr(t *testing.T) {
	t.Run("ListenAndServe", func(t *testing.T) {
		srv, err := New(Config{Addr: "127.0.0.1:0", StatusAddr: "127.0.0.1:0", Name: "a1", Quiet: true,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if srv.Addr() != nil || srv.StatusAddr() != nil {
			t.Fatalf("before Serve: %v, %v; want nil", srv.Addr(), srv.StatusAddr())
		}
		served := make(chan error, 1)
		go func() { served <- srv.ListenAndServe() }()
		eventually.True(t, 5*time.Second, "the server's addresses", func() bool {
			return srv.Addr() != nil && srv.StatusAddr() != nil
		})
		calc, status := srv.Addr().(*net.UDPAddr), srv.StatusAddr().(*net.UDPAddr)
		if calc.Port == 0 || status.Port == 0 || calc.Port == status.Port || !calc.IP.IsLoopback() {
			t.Fatalf("calculator %v, status %v", calc, status)
		}
		if got := string(exchange(t, dial(t, calc), []byte("6 * 7\n"))); got != "42\n" {
			t.Errorf("the calculator port answered %q", got)
		}
		if got := string(exchange(t, dial(t, status), []byte("status\n"))); !strings.HasPrefix(got, "server=a1 ") {
			t.Errorf("the status port answered %q", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("ListenAndServe returned %v", err)
		}
		if srv.Addr().String() != calc.String() {
			t.Errorf("after Shutdown, Addr is %v, want %v still", srv.Addr(), calc)
		}
	})
	t.Run("Serve", func(t *testing.T) {
		ts := start(t, Config{})
		eventually.True(t, 5*time.Second, "the server's addresses", func() bool { return ts.Addr() != nil })
		if ts.Addr().String() != ts.calc.String() || ts.StatusAddr().String() != ts.status.String() {
			t.Fatalf("Addr %v, StatusAddr %v; the sockets are %v, %v", ts.Addr(), ts.StatusAddr(), ts.calc, ts.status)
		}
	})
}

// TestServersShareTheSampler: the servers of one process report the same
// host and process figures, so they share one sampler for an interval,
// which runs while any of them serves.
func TestServersShareTheSampler(t *testing.T) {
	a, b := start(t, Config{Quiet: true}), start(t, Config{Quiet: true, SampleInterval: 100 * time.Millisecond})
	other := start(t, Config{Quiet: true, SampleInterval: 150 * time.Millisecond})
	if a.sampler != b.sampler {
		t.Error("two servers with one interval have a sampler each")
	}
	if a.sampler == other.sampler {
		t.Error("servers with other intervals share a sampler")
	}
	c := dial(t, a.status)
	if got := exchange(t, c, []byte("status")); !strings.Contains(string(got), "host_cpu=") {
		t.Fatalf("status: %q", got)
	}
}
