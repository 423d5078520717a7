package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
	"github.com/discal/discal/internal/faultnet"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

var quiet = slog.New(slog.DiscardHandler)

// faultySystem runs three servers and a proxy in this process with a
// fault-injecting relay on every hop that carries calculations: one in
// front of the proxy for the clients, one in front of each server's
// calculator port for the proxy. Status polls go straight, so that the
// test is about requests, not about servers leaving the rotation.
type faultySystem struct {
	entry   *faultnet.Relay // clients send here
	proxy   *udpproxy.Proxy
	servers []*udpserver.Server
}

func startFaulty(t *testing.T, f faultnet.Faults, pcfg udpproxy.Config) *faultySystem {
	t.Helper()
	fs := &faultySystem{}
	var addrs []udpproxy.ServerAddr
	for i := range 3 {
		s, calc, status := discaltest.StartServer(t, udpserver.Config{Name: fmt.Sprintf("s%d", i+1)})
		relay, err := faultnet.Start(faultnet.Config{Target: calc.String(), Forward: f, Backward: f, Seed: uint64(10 + i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { relay.Close() })
		fs.servers = append(fs.servers, s)
		addrs = append(addrs, udpproxy.ServerAddr{Calc: relay.Addr().String(), Status: status.String()})
	}
	pcfg.Servers, pcfg.Logger = addrs, quiet
	p, err := udpproxy.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := net.ListenPacket("udp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- p.Serve(conn) }()
	t.Cleanup(func() { p.Close(); <-done })
	fs.proxy = p
	entry, err := faultnet.Start(faultnet.Config{Target: conn.LocalAddr().String(), Forward: f, Backward: f, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { entry.Close() })
	fs.entry = entry
	return fs
}

// flood sends n random requests from workers goroutines sharing clients
// clients, and returns every answer that was not the one computed locally.
// Before it closes the clients it waits until their ignored answers reach
// settle (if given), so that late duplicates are counted too.
func (fs *faultySystem) flood(t *testing.T, n, workers, clients int, cfg udpclient.Config, settle ...func(ignored uint64) bool) (wrong []error, ignored uint64) {
	t.Helper()
	var cls []*udpclient.Client
	for range clients {
		c, err := udpclient.Dial(fs.entry.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		cls = append(cls, c)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 5))
			c := cls[w%clients]
			for i := w; i < n; i += workers {
				req := codec.Request{Op: codec.Ops[r.IntN(4)], A: codec.IntNumber(r.Int64N(2001) - 1000), B: codec.IntNumber(r.Int64N(21) - 10)}
				rep, err := c.Do(context.Background(), req)
				want, wantErr := arith.Eval(req.Op, req.A, req.B)
				var bad error
				switch {
				case wantErr != nil && !errors.Is(err, wantErr):
					bad = fmt.Errorf("%v: got %v, %v; want %v", req, rep.Result, err, wantErr)
				case wantErr == nil && (err != nil || !rep.Result.Equal(want)):
					bad = fmt.Errorf("%v: got %v, %v; want %v", req, rep.Result, err, want)
				}
				if bad != nil {
					mu.Lock()
					wrong = append(wrong, bad)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	count := func() (sum uint64) {
		for _, c := range cls {
			sum += c.Ignored()
		}
		return sum
	}
	if len(settle) > 0 {
		// Bounded: the caller judges the count it gets.
		eventually.Within(5*time.Second, func() bool { return settle[0](count()) })
	}
	ignored = count()
	for _, c := range cls {
		c.Close()
	}
	return wrong, ignored
}

func report(t *testing.T, fs *faultySystem, wrong []error) {
	t.Helper()
	for i, err := range wrong {
		if i == 10 {
			t.Errorf("... and %d more", len(wrong)-10)
			break
		}
		t.Error(err)
	}
	st := fs.proxy.Stats()
	t.Logf("proxy: requests %d, retries %d, timeouts %d; entry relay %+v", st.Requests, st.Retries, st.Timeouts, fs.entry.Stats())
}

// TestLossEveryHop: 10% loss in each direction on both hops; 10,000
// requests through the client library, with retries, all get the right
// answer.
//
// The tries wait long enough for what a loaded machine does to a round
// trip: with the proxy's tries at 30 ms and the client's at 80 ms, a full
// run of the suite (-race, other work beside it) had the proxy give up on
// 15% of its tries where the losses explain 4% (as in a run alone), and
// 7 requests used up their 11 tries in under a second.
func TestLossEveryHop(t *testing.T) {
	exclusive.CPU(t)
	fs := startFaulty(t, faultnet.Faults{Loss: 0.10}, udpproxy.Config{TryTimeout: 100 * time.Millisecond, Tries: 2})
	wrong, _ := fs.flood(t, 10000, 128, 8, udpclient.Config{Timeout: 200 * time.Millisecond, Retries: 10})
	report(t, fs, wrong)
	if st := fs.entry.Stats(); st.Dropped[0] == 0 || st.Dropped[1] == 0 {
		t.Fatalf("the relay dropped nothing: %+v", st)
	}
}

// TestDuplicationEveryHop: 10% duplication; every request is answered
// once, rightly: the duplicate answers are recognised and ignored.
func TestDuplicationEveryHop(t *testing.T) {
	fs := startFaulty(t, faultnet.Faults{Dup: 0.10}, udpproxy.Config{})
	const n = 10000
	extra := func() uint64 { return fs.entry.Stats().Forwarded[1] - n } // answers delivered beyond one each
	wrong, ignored := fs.flood(t, n, 128, 8, udpclient.Config{Timeout: time.Second},
		func(ignored uint64) bool { return ignored >= extra() })
	report(t, fs, wrong)
	// The clients took exactly one answer per request: every other answer
	// delivered to them was recognised as a duplicate and ignored.
	if st := fs.entry.Stats(); ignored != extra() || st.Duplicated[1] == 0 {
		t.Fatalf("%d answers delivered for %d requests, %d ignored", st.Forwarded[1], n, ignored)
	}
	t.Logf("duplicate answers ignored by the clients: %d", ignored)
}

// TestReorderAndJitter: reordering and 50 ms of jitter on every hop change
// nothing but latency.
func TestReorderAndJitter(t *testing.T) {
	f := faultnet.Faults{Reorder: 0.10, Jitter: 50 * time.Millisecond}
	fs := startFaulty(t, f, udpproxy.Config{TryTimeout: 300 * time.Millisecond})
	wrong, _ := fs.flood(t, 2000, 128, 8, udpclient.Config{Timeout: time.Second})
	report(t, fs, wrong)
	if st := fs.entry.Stats(); st.Reordered[0] == 0 {
		t.Fatalf("nothing reordered: %+v", st)
	}
	// Late is not lost: the jitter (at most 100 ms to a server and back)
	// stays within a try, so the proxy gives up on nothing.
	if st := fs.proxy.Stats(); st.Timeouts != 0 {
		t.Fatalf("the proxy timed out %d requests", st.Timeouts)
	}
}
