package e2e

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/exclusive"
	"github.com/discal/discal/udpclient"
	"github.com/vmihailenco/msgpack/v5"
)

// rssKB reads a process's resident memory from /proc.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// garbage makes hostile datagrams: random bytes, truncated and corrupted
// requests, wrong magic, wrong kinds, huge and negative numbers, NaN,
// oversized datagrams, bodies that lie about their lengths.
func garbage(r *rand.Rand) []byte {
	good := codec.AppendRequest(nil, r.Uint64(), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(2)})
	body := func(v any) []byte {
		b, _ := msgpack.Marshal(v)
		return append(codec.AppendHeader(nil, codec.KindRequest, r.Uint64()), b...)
	}
	switch r.IntN(12) {
	case 0:
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	case 1:
		return good[:r.IntN(len(good))]
	case 2:
		b := bytes.Clone(good)
		b[r.IntN(len(b))] ^= byte(1 + r.UintN(255))
		return b
	case 3:
		return append([]byte{byte(r.UintN(256))}, good[1:]...)
	case 4:
		return codec.AppendHeader(nil, codec.Kind(r.UintN(256)), r.Uint64())
	case 5:
		return body(map[string]any{"op": "mul", "a": uint64(math.MaxUint64), "b": int64(math.MinInt64)})
	case 6:
		return body(map[string]any{"op": "div", "a": math.NaN(), "b": math.Inf(-1)})
	case 7:
		return append(bytes.Clone(good), make([]byte, 600+r.IntN(2000))...) // oversized
	case 8:
		return append(codec.AppendHeader(nil, codec.KindRequest, r.Uint64()), 0x84, 0xdb, 0xff, 0xff, 0xff, 0xf0) // a 4 GB string
	case 9:
		return []byte(strings.Repeat("9", 1+r.IntN(600)) + " * 2")
	case 10:
		return []byte("error: " + strings.Repeat("x", r.IntN(40)))
	}
	return body(map[string]any{"op": strings.Repeat("z", r.IntN(300)), "a": "1", "b": []int{1, 2}})
}

// TestGarbageFlood throws 100,000 hostile datagrams each at the proxy, a
// server's calculator port and its status port, real processes all, while
// a client keeps asking real questions: nothing crashes, every question is
// answered right, the garbage is counted, and memory stays flat. It does it
// twice: the first flood touches the pages of the read buffers (64 KiB a
// slot, for GRO) that big datagrams fill and lets the heap grow to its
// working size; the second must keep nothing more.
//
// What a process keeps is read from the Go runtime itself (GODEBUG=gctrace=1
// prints the live heap after every collection), not from RSS alone: with
// GOGC=100 the heap may grow to twice what is live before a collection, so
// RSS moves by the size of the live heap without anything being kept.
func TestGarbageFlood(t *testing.T) {
	exclusive.CPU(t)
	s := startSystemEnv(t, []string{"GODEBUG=gctrace=1"})
	procs := map[string]*proc{"proxy": s.proxyP}
	for i, p := range s.servers {
		procs["s"+strconv.Itoa(i+1)] = p
	}

	cl, err := udpclient.Dial(s.proxy, udpclient.Config{Timeout: 500 * time.Millisecond, Retries: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ask := func(r *rand.Rand) error {
		req := codec.Request{Op: codec.Ops[r.IntN(4)], A: codec.IntNumber(r.Int64N(1000)), B: codec.IntNumber(1 + r.Int64N(9))}
		rep, err := cl.Do(context.Background(), req)
		want, _ := arith.Eval(req.Op, req.A, req.B)
		if err != nil || !rep.Result.Equal(want) {
			t.Errorf("%v: got %v, %v; want %v", req, rep.Result, err, want)
		}
		return err
	}
	// Warm up with real traffic, so that buffers the processes use anyway
	// are counted before the garbage comes.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		_ = ask(r)
	}
	type reading struct{ rss, live int } // kB; live is -1 when no collection ran
	read := func() map[string]reading {
		m := map[string]reading{}
		for name, p := range procs {
			m[name] = reading{rss: rssKB(t, p.cmd.Process.Pid), live: liveHeapKB(p)}
		}
		return m
	}
	start := read()
	garbageFlood(t, s, ask)
	middle := read()
	garbageFlood(t, s, ask)
	end := read()
	for name := range procs {
		a, b, c := start[name], middle[name], end[name]
		t.Logf("%s: RSS %d kB, after 300,000 garbage datagrams %d kB, after 300,000 more %d kB; live heap at the last collection of each flood %d kB, %d kB",
			name, a.rss, b.rss, c.rss, b.live, c.live)
		// A leak of even 16 bytes a datagram would be 4.8 MB here; the
		// live heap of a process that keeps nothing wanders by a
		// megabyte or two between collections.
		if b.live >= 0 && c.live > b.live+2048 {
			t.Errorf("%s: the live heap grew by %d kB in the second flood", name, c.live-b.live)
		}
		// RSS catches what the heap does not show (stacks, buffers
		// from outside the Go heap): beyond the heap's own headroom of
		// one live heap, it must not grow.
		headroom := max(a.live, b.live, c.live, 0)
		if c.rss > b.rss+4096+headroom {
			t.Errorf("%s: RSS grew by %d kB in the second flood, more than the heap's headroom of %d kB", name, c.rss-b.rss, headroom)
		}
	}
	// The garbage is counted: the proxy's drops, the server's.
	m := regexp.MustCompile(`dropped=(\d+)`).FindStringSubmatch(exchangeText(t, s.proxy, "stats\n"))
	if n, _ := strconv.Atoi(m[1]); n < 20000 {
		t.Errorf("the proxy counted %d dropped datagrams", n)
	}
	m = regexp.MustCompile(`dropped=(\d+)`).FindStringSubmatch(exchangeText(t, s.status[0], "status\n"))
	if n, _ := strconv.Atoi(m[1]); n < 20000 {
		t.Errorf("the server counted %d dropped datagrams", n)
	}
}

// gcLine is what GODEBUG=gctrace=1 prints for a collection: the heap at its
// start, at its end, and what was live (marked), in MB.
var gcLine = regexp.MustCompile(`^gc \d+ .* (\d+)->(\d+)->(\d+) MB`)

// liveHeapKB reads what a process has printed on stderr since the last call
// and returns the live heap at the last collection among it, in kB, or -1
// when no collection ran.
func liveHeapKB(p *proc) int {
	live := -1
	for {
		select {
		case l := <-p.lines:
			if m := gcLine.FindStringSubmatch(l); m != nil {
				mb, _ := strconv.Atoi(m[3])
				live = mb * 1024
			}
		default:
			return live
		}
	}
}

// garbageFlood sends 100,000 garbage datagrams to each of the proxy, a calculator
// port and a status port while ask keeps asking questions through the
// proxy.
func garbageFlood(t *testing.T, s *system, ask func(*rand.Rand) error) {
	t.Helper()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	questions := 0
	wg.Go(func() {
		r := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = ask(r)
			questions++
		}
	})
	for _, target := range []string{s.proxy, s.calc[0], s.status[0]} {
		conn, err := net.Dial("udp", target)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 6))
		for i := range 100000 {
			_, _ = conn.Write(garbage(r))
			if i%200 == 199 {
				time.Sleep(time.Millisecond) // stay under what loopback buffers hold, so that the garbage is read, not lost in the kernel
			}
		}
		conn.Close()
	}
	close(stop)
	wg.Wait()
	t.Logf("%d questions answered during the flood", questions)
	if questions == 0 {
		t.Fatal("no question was answered during the flood")
	}
}
