package udpproxy_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// load sends requests through the proxy from a few goroutines until stop
// is closed or limit has passed, and counts the wrong answers.
func load(t *testing.T, addr net.Addr, stop <-chan struct{}, limit time.Duration) (wrong *atomic.Int64, wait func()) {
	t.Helper()
	wrong = new(atomic.Int64)
	var wg sync.WaitGroup
	deadline := time.Now().Add(limit)
	for range 4 {
		c := dialClient(t, addr, udpclient.Config{Timeout: 2 * time.Second})
		wg.Go(func() {
			for i := int64(0); time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := c.Calc(context.Background(), codec.OpAdd, codec.IntNumber(i), codec.IntNumber(1))
				if err != nil || !r.Equal(codec.IntNumber(i+1)) {
					wrong.Add(1)
				}
			}
		})
	}
	return wrong, wg.Wait
}

// TestEjection: a server whose status port answers but whose calculator
// port does not is ejected once its tries time out in a row, gets no first
// tries while out, is not brought back by its status answers or by time
// alone, and returns once its calculator port answers a canary. Every
// client request is answered right throughout.
func TestEjection(t *testing.T) {
	good := serveServer(t, udpserver.Config{Name: "good"}, nil, nil)
	hole := startHalfDead(t, "hole")
	p, addr := discaltest.StartProxy(t, udpproxy.Config{
		Servers:    []udpproxy.ServerAddr{{Calc: good.calc.String(), Status: good.status.String()}, hole.addr},
		Poll:       20 * time.Millisecond,
		TryTimeout: 50 * time.Millisecond,
		EjectTime:  100 * time.Millisecond,
	})
	stop := make(chan struct{})
	wrong, wait := load(t, addr, stop, 20*time.Second)
	defer func() {
		close(stop)
		wait()
		if n := wrong.Load(); n != 0 {
			t.Errorf("%d requests answered wrong or not at all", n)
		}
	}()

	eventually.True(t, 10*time.Second, "the hole to be ejected", func() bool { return backendByName(p, "hole").Ejected })
	st := backendByName(p, "hole")
	if st.EjectReason == "" || st.Ejections != 1 || st.InRotation {
		t.Fatalf("ejected hole: %+v", st)
	}
	// Its time is up after 100 ms; canaries go with every poll from then
	// on. Status answers keep coming, yet it stays out until a canary is
	// answered.
	canaries := hole.seen.Load()
	eventually.True(t, 10*time.Second, "canaries at the hole", func() bool { return hole.seen.Load() >= canaries+5 })
	after := backendByName(p, "hole")
	if !after.Ejected || !after.Up {
		t.Fatalf("the hole came back on status answers alone: %+v", after)
	}
	if after.Sent != st.Sent {
		t.Fatalf("the ejected hole got %d more tries", after.Sent-st.Sent)
	}
	hole.alive.Store(true)
	eventually.True(t, 10*time.Second, "the hole to be back", func() bool { return backendByName(p, "hole").InRotation })
	eventually.True(t, 10*time.Second, "the hole to answer requests", func() bool { return backendByName(p, "hole").Answered > 0 })
}

// TestEjectionCap: with two of three servers dead on their calculator
// ports, at most half of the servers (one) is ejected; the other stays in
// rotation, and every request is still answered by the live one (or after
// a retry).
func TestEjectionCap(t *testing.T) {
	good := serveServer(t, udpserver.Config{Name: "good"}, nil, nil)
	h1, h2 := startHalfDead(t, "h1"), startHalfDead(t, "h2")
	p, addr := discaltest.StartProxy(t, udpproxy.Config{
		Servers:    []udpproxy.ServerAddr{{Calc: good.calc.String(), Status: good.status.String()}, h1.addr, h2.addr},
		Poll:       20 * time.Millisecond,
		TryTimeout: 30 * time.Millisecond,
		Tries:      3,
	})
	stop := make(chan struct{})
	wrong, wait := load(t, addr, stop, 20*time.Second)
	ejected := func() int {
		n := 0
		for _, s := range p.Stats().Servers {
			if s.Ejected {
				n++
			}
		}
		return n
	}
	eventually.True(t, 10*time.Second, "one hole to be ejected", func() bool { return ejected() == 1 })
	// Both holes keep failing; wait until the one still in rotation has
	// failed well past MaxFails, and check the cap held.
	eventually.True(t, 10*time.Second, "the other hole to fail more", func() bool {
		return backendByName(p, "h1").Timeouts+backendByName(p, "h2").Timeouts > 3*udpproxy.DefaultMaxFails
	})
	if n := ejected(); n != 1 {
		t.Fatalf("%d servers ejected of 3, want 1 (50%%)", n)
	}
	close(stop)
	wait()
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d requests answered wrong or not at all", n)
	}
}
