package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
	"github.com/discal/discal/internal/faultnet"
	"github.com/discal/discal/internal/udpbatch"
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
// clients, and returns every answer that was not the one computed locally,
// and how many answers the clients did not take: ignored (duplicates, and
// answers to a try already answered) or dropped by the kernel before they
// read them (a full socket buffer: on a machine that stalls the clients,
// answers pile up). Before it closes the clients it waits until that count
// reaches settle (if given), so that late duplicates are counted too.
func (fs *faultySystem) flood(t *testing.T, n, workers, clients int, cfg udpclient.Config, settle ...func(notTaken uint64) bool) (wrong []error, ignored, dropped uint64) {
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
	var locals []string
	for _, c := range cls {
		locals = append(locals, c.LocalAddr().String())
	}
	count := func() (ignored, dropped uint64) {
		for _, c := range cls {
			ignored += c.Ignored()
		}
		return ignored, kernelDrops(t, locals)
	}
	if len(settle) > 0 {
		// Bounded: the caller judges the count it gets.
		eventually.Within(5*time.Second, func() bool { i, d := count(); return settle[0](i + d) })
	}
	ignored, dropped = count()
	for _, c := range cls {
		c.Close()
	}
	return wrong, ignored, dropped
}

// kernelDrops sums what the kernel dropped on the UDP sockets bound to
// addrs (IPv4), from the drops column of /proc/net/udp; 0 where the system
// does not say. It reads the thread's own view: /proc/net is the main
// thread's, and a test that enters a network namespace on a thread of its
// own (controlkey_test's inNS) leaves the main thread there when that
// thread was the one it got (Go never ends the main thread), so that
// TestKernelDrops after TestControlKeyNetns found no socket of its own.
func kernelDrops(t *testing.T, addrs []string) uint64 {
	t.Helper()
	runtime.LockOSThread() // the thread that opens thread-self is the thread it names
	b, err := os.ReadFile("/proc/thread-self/net/udp")
	runtime.UnlockOSThread()
	if err != nil {
		return 0
	}
	want := map[string]bool{}
	for _, a := range addrs {
		ap := netip.MustParseAddrPort(a)
		ip := ap.Addr().As4()
		// The kernel writes the address as one hex word in host order
		// (little-endian here) and the port in hex: 0100007F:BA20.
		want[fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())] = true
	}
	var sum uint64
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || !want[f[1]] {
			continue
		}
		n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("/proc/net/udp: drops %q: %v", f[len(f)-1], err)
		}
		sum += n
	}
	return sum
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
	wrong, _, _ := fs.flood(t, 10000, 128, 8, udpclient.Config{Timeout: 200 * time.Millisecond, Retries: 10})
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
	wrong, ignored, dropped := fs.flood(t, n, 128, 8, udpclient.Config{Timeout: time.Second},
		func(notTaken uint64) bool { return notTaken >= extra() })
	report(t, fs, wrong)
	// The clients took exactly one answer per request: every other answer
	// delivered to them was recognised as a duplicate and ignored, or
	// never read, the kernel having dropped it (a full run of the suite,
	// the machine stalled by other work, once left 144 of 2289 not
	// ignored: answers that piled up at clients that did not run).
	if st := fs.entry.Stats(); ignored+dropped != extra() || st.Duplicated[1] == 0 {
		t.Fatalf("%d answers delivered for %d requests, %d ignored, %d dropped by the kernel", st.Forwarded[1], n, ignored, dropped)
	}
	t.Logf("answers not taken by the clients: %d ignored, %d dropped by the kernel", ignored, dropped)
}

// TestReorderAndJitter: reordering and 50 ms of jitter on every hop change
// nothing but latency.
func TestReorderAndJitter(t *testing.T) {
	f := faultnet.Faults{Reorder: 0.10, Jitter: 50 * time.Millisecond}
	// A try waits ten times the jitter: with 300 ms, a full run of the
	// suite, the machine stalled by other work, had the proxy give up on
	// 23 tries.
	fs := startFaulty(t, f, udpproxy.Config{TryTimeout: time.Second})
	wrong, _, _ := fs.flood(t, 2000, 128, 8, udpclient.Config{Timeout: time.Second})
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

// TestKernelDrops: kernelDrops reads what the kernel says it dropped on a
// socket, as udpbatch.Drops asks the socket itself.
func TestKernelDrops(t *testing.T) {
	if _, err := os.Stat("/proc/thread-self/net/udp"); err != nil {
		t.Skip("no /proc/thread-self/net/udp here: kernelDrops says 0")
	}
	full, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	_ = full.SetReadBuffer(1) // the kernel's least: a few datagrams fill it
	sender, err := net.DialUDP("udp", nil, full.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	for range 1000 {
		_, _ = sender.Write([]byte("x"))
	}
	addr := []string{full.LocalAddr().String()}
	eventually.True(t, 5*time.Second, "drops on the socket nobody reads", func() bool { return kernelDrops(t, addr) > 0 })
	if got, want := kernelDrops(t, addr), udpbatchDrops(t, full); got != want {
		t.Fatalf("kernelDrops %d, the socket says %d", got, want)
	}
}

func udpbatchDrops(t *testing.T, c *net.UDPConn) uint64 {
	t.Helper()
	n, err := udpbatch.Drops(c)
	if err != nil {
		t.Skipf("the socket does not say: %v", err)
	}
	return n
}
