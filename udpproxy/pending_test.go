package udpproxy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/discal/discal/codec"
)

func testBackend(t testing.TB, calc string) *Server {
	t.Helper()
	b, err := newServer(ServerAddr{Calc: calc, Status: calc}, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPendingTakeChecksSource(t *testing.T) {
	tab := newPendingTable(10)
	b := testBackend(t, "127.0.0.1:7001")
	r := rand.New(rand.NewPCG(1, 2))
	tmpl := entry{server: b, origin: origin{id: 7}}
	tmpl.setRequest([]byte("request"))
	id, ok := tab.insert(r, &tmpl)
	if !ok || tab.Len() != 1 {
		t.Fatal("insert failed")
	}
	if _, ok, forged := tab.take(id, netip.MustParseAddrPort("127.0.0.1:7002")); ok || !forged {
		t.Fatalf("take from the wrong port: ok %v, forged %v", ok, forged)
	}
	if _, ok, forged := tab.take(id+1, b.calc); ok || forged {
		t.Fatalf("take of an unknown ID: ok %v, forged %v", ok, forged)
	}
	rt, ok, forged := tab.take(id, b.calc)
	if !ok || forged || rt.id != 7 || rt.server != b {
		t.Fatalf("take from the backend = %+v, %v, %v", rt, ok, forged)
	}
	if _, ok, _ := tab.take(id, b.calc); ok {
		t.Fatal("an entry was taken twice")
	}
	if tab.Len() != 0 {
		t.Fatalf("Len = %d after take", tab.Len())
	}
}

// TestPendingTakeZones: a server named with a zone answers from its
// address with the zone the kernel gives, the interface's index. That is
// the server; the same address on another interface is not.
func TestPendingTakeZones(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip(err)
	}
	tab := newPendingTable(10)
	b := testBackend(t, "[fe80::1%lo]:7001")
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		from   string
		ok     bool
		forged bool
	}{
		{fmt.Sprintf("[fe80::1%%%d]:7001", lo.Index+1000), false, true}, // another link
		{"[fe80::2%lo]:7001", false, true},
		{fmt.Sprintf("[fe80::1%%%d]:7001", lo.Index), true, false}, // lo by number, as read
		{"[fe80::1%lo]:7001", true, false},
		{"[fe80::1]:7001", true, false}, // no zone: any interface, as the kernel's scope 0
	} {
		id, _ := tab.insert(r, &entry{server: b})
		if _, ok, forged := tab.take(id, netip.MustParseAddrPort(c.from)); ok != c.ok || forged != c.forged {
			t.Errorf("a reply from %s: ok %v, forged %v; want %v, %v", c.from, ok, forged, c.ok, c.forged)
		}
		if !c.ok {
			tab.take(id, b.calc)
		}
	}
}

func TestPendingLimit(t *testing.T) {
	tab := newPendingTable(3)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3 {
		if _, ok := tab.insert(r, &entry{}); !ok {
			t.Fatalf("insert %d refused below the limit", i)
		}
	}
	if _, ok := tab.insert(r, &entry{}); ok {
		t.Fatal("insert beyond the limit succeeded")
	}
	if tab.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tab.Len())
	}
}

// TestPendingLongRequest: a request longer than the inline buffer survives
// the table and a retry intact, and entries reused later do not see it.
func TestPendingLongRequest(t *testing.T) {
	tab := newPendingTable(10)
	r := rand.New(rand.NewPCG(3, 4))
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i)
	}
	tmpl := entry{deadline: 1}
	tmpl.setRequest(long)
	id, _ := tab.insert(r, &tmpl)
	tmpl.setRequest([]byte("short")) // the template is the reader's: it moves on
	var got []byte
	tab.expired(2, func(id uint64, e *entry) {
		got = append([]byte(nil), e.request()...)
		tab.release(id, e)
	})
	if string(got) != string(long) {
		t.Fatalf("the long request came back as %d bytes", len(got))
	}
	_ = id
	id2, _ := tab.insert(r, &tmpl)
	tab.expired(3, func(id uint64, e *entry) {
		if id == id2 && string(e.request()) != "short" {
			t.Fatalf("a reused entry holds %q", e.request())
		}
		tab.release(id, e)
	})
}

// TestPendingExpiresExactlyOnce inserts entries with spread deadlines,
// takes some as answered, and checks that expiry yields exactly the others,
// each once, and only when due.
func TestPendingExpiresExactlyOnce(t *testing.T) {
	tab := newPendingTable(100000)
	b := testBackend(t, "127.0.0.1:7001")
	r := rand.New(rand.NewPCG(1, 1))
	const n = 5000
	ids := make([]uint64, n)
	for i := range n {
		// Inserted in deadline order, as the proxy does.
		id, ok := tab.insert(r, &entry{server: b, deadline: int64(i)})
		if !ok {
			t.Fatal("insert failed")
		}
		ids[i] = id
	}
	answered := map[uint64]bool{}
	for i := 0; i < n; i += 3 {
		if _, ok, _ := tab.take(ids[i], b.calc); !ok {
			t.Fatal("take failed")
		}
		answered[ids[i]] = true
	}
	if got, want := listed(tab), n-len(answered); got != want || tab.Len() != want {
		t.Fatalf("%d entries listed for expiry, %d pending; want %d", got, tab.Len(), want)
	}
	seen := map[uint64]int{}
	tab.expired(n/2-1, func(id uint64, e *entry) {
		if e.deadline > n/2-1 {
			t.Fatalf("entry with deadline %d expired at %d", e.deadline, n/2-1)
		}
		seen[id]++
		tab.release(id, e)
	})
	tab.expired(n, func(id uint64, e *entry) { seen[id]++; tab.release(id, e) })
	tab.expired(n, func(id uint64, e *entry) { t.Fatalf("expired twice: %x", id) })
	for _, id := range ids {
		want := 1
		if answered[id] {
			want = 0
		}
		if seen[id] != want {
			t.Fatalf("ID %x expired %d times, want %d", id, seen[id], want)
		}
	}
	if tab.Len() != 0 {
		t.Fatalf("Len = %d at the end", tab.Len())
	}
}

func TestForgedReplyNeverReachesClient(t *testing.T) {
	p, err := New(Config{Servers: []ServerAddr{{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"}}})
	if err != nil {
		t.Fatal(err)
	}
	b := p.members.servers()[0]
	w := p.router.newWorker(nil)
	id, _ := p.router.pending.insert(w.rng, &entry{server: b})
	reply := codec.AppendReply(nil, id, codec.Reply{Result: codec.IntNumber(666)})
	p.router.handleUpstream(w, 0, reply, netip.MustParseAddrPort("127.0.0.1:9999"))    // wrong source
	p.router.handleUpstream(w, 1, codec.AppendReply(nil, id^1, codec.Reply{}), b.calc) // unknown ID
	if p.counters.drops[dropForged].Load() != 1 || p.counters.drops[dropUnknown].Load() != 1 {
		t.Fatalf("forged %d, unknown %d; want 1 and 1", p.counters.drops[dropForged].Load(), p.counters.drops[dropUnknown].Load())
	}
	if p.router.pending.Len() != 1 {
		t.Fatal("a forged reply removed the pending entry")
	}
}

// TestPendingMemoryBoundedByLimit answers many requests at once under a
// long timeout, as a busy proxy with -try-timeout 60s does: the table must
// hold no more than what is waiting, however many requests went through.
// Before, each try left a record in its shard's queue until its deadline,
// so memory grew with rate x timeout while the table held nothing.
func TestPendingMemoryBoundedByLimit(t *testing.T) {
	const limit, cycles = 1000, 400000
	tab := newPendingTable(limit)
	b := testBackend(t, "127.0.0.1:7001")
	r := rand.New(rand.NewPCG(5, 6))
	tmpl := entry{server: b, deadline: 1 << 62} // a timeout no request reaches
	tmpl.setRequest(make([]byte, 40))
	ids := make([]uint64, 0, limit)
	cycle := func() {
		// Fill the table to its limit and answer everything, a window at
		// a time, with a sweep between windows that finds nothing due.
		for len(ids) < limit {
			id, ok := tab.insert(r, &tmpl)
			if !ok {
				t.Fatalf("insert refused with %d pending", tab.Len())
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			if _, ok, _ := tab.take(id, b.calc); !ok {
				t.Fatal("take failed")
			}
		}
		ids = ids[:0]
		tab.expired(1, func(uint64, *entry) { t.Fatal("an answered request expired") })
	}
	cycle() // the table's own working set: entries, maps, free lists
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range cycles / limit {
		cycle()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tab)
	// 400,000 queue records of 16 bytes were 6.4 MB; the bound leaves room
	// for the test's own noise.
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Fatalf("the heap grew by %d bytes over %d answered requests with at most %d pending", grew, cycles, limit)
	}
	if n := listed(tab); n != 0 || tab.Len() != 0 {
		t.Fatalf("%d entries listed for expiry, %d pending, after every request was answered", n, tab.Len())
	}
}

// listed counts the entries in the shards' expiry lists, checking each
// list's links.
func listed(tab *pendingTable) int {
	n := 0
	for i := range tab.shards {
		s := &tab.shards[i]
		s.mu.Lock()
		var prev *entry
		for e := s.head; e != nil; prev, e = e, e.next {
			if e.prev != prev || s.m[e.id] != e {
				panic("a broken expiry list")
			}
			n++
		}
		if s.tail != prev {
			panic("an expiry list whose tail is not its last entry")
		}
		s.mu.Unlock()
	}
	return n
}

func BenchmarkPendingInsertTake(b *testing.B) {
	tab := newPendingTable(1 << 20)
	be := testBackend(b, "127.0.0.1:7001")
	r := rand.New(rand.NewPCG(1, 2))
	tmpl := entry{server: be}
	tmpl.setRequest(make([]byte, 40))
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if n++; n%4096 == 0 {
			tab.expired(1<<62, func(uint64, *entry) { b.Fatal("a taken entry expired") })
		}
		id, _ := tab.insert(r, &tmpl)
		if _, ok, _ := tab.take(id, be.calc); !ok {
			b.Fatal("take failed")
		}
	}
}

// BenchmarkForwardReturn takes one request through the proxy's forward path
// (header, choice, pending entry, ID rewrite) and its reply through the
// return path (take, source check, ID rewrite), without sockets. Both must
// allocate nothing.
func BenchmarkForwardReturn(b *testing.B) {
	p, err := New(Config{Servers: []ServerAddr{
		{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"},
		{Calc: "127.0.0.1:7002", Status: "127.0.0.1:7102"},
		{Calc: "127.0.0.1:7003", Status: "127.0.0.1:7103"},
	}})
	if err != nil {
		b.Fatal(err)
	}
	w := p.router.newWorker(nil)
	client := netip.MustParseAddrPort("127.0.0.1:5555")
	req := codec.AppendRequest(nil, 42, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})
	reply := codec.AppendReply(nil, 0, codec.Reply{Result: codec.IntNumber(42), Server: "s1"})
	pkt := make([]byte, len(req))
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if n++; n%4096 == 0 {
			// What the sweeper does: drop the queue's records of
			// requests long answered.
			p.router.pending.expired(1<<62, func(uint64, *entry) { b.Fatal("an answered request expired") })
		}
		copy(pkt, req)
		p.router.handleClient(w, 0, pkt, client)
		out := w.toServers[0]
		w.toServers = w.toServers[:0]
		h, _ := codec.ParseHeader(out.Buf)
		codec.SetID(reply, h.ID)
		p.router.handleUpstream(w, 0, reply, out.Addr)
		if len(w.toClients) != 1 {
			b.Fatal("no reply for the client")
		}
		w.toClients = w.toClients[:0]
	}
}

// TestLoadModel feeds the poller status replies as real servers would send
// them, poll after poll: two servers in one process and one in another, on
// one host. Servers sharing a process get the same figure whatever moment
// each sampled at; CPU that the servers' request rates explain is not
// background; a process that burns CPU on something else is.
func TestLoadModel(t *testing.T) {
	p, err := New(Config{Servers: []ServerAddr{
		{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"},
		{Calc: "127.0.0.1:7002", Status: "127.0.0.1:7102"},
		{Calc: "127.0.0.1:7003", Status: "127.0.0.1:7103"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	pl := newPoller(&p.cfg, p.members, &p.counters)
	bs := p.members.servers()
	served := make([]uint64, 3)
	id := uint64(0)
	poll := func(i int, proc, host float64, procID string, rate float64) {
		id++
		served[i] += uint64(rate / 10) // a poll every 100 ms
		st := codec.Status{Server: fmt.Sprint("s", i+1), HostCPU: host, ProcCPU: proc, Cores: 2, HostCores: 2,
			HostID: "h", ProcID: procID, Served: served[i]}
		bs[i].polled.pollID.Store(id)
		if prev := bs[i].polled.report.Load(); prev != nil {
			// Pretend the poll interval passed.
			old := *prev
			old.at -= int64(100 * time.Millisecond)
			bs[i].polled.report.Store(&old)
		}
		pl.handleStatus(codec.AppendStatus(nil, id, st), id, bs[i].status)
		pl.refresh()
	}
	// Each request costs 0.001 CPU seconds. s1 and s2 share process "a"
	// and serve 100/s each: 20% of a core. s3, process "b", serves 100/s
	// and burns 60% of a core besides: 70%.
	for range 30 {
		poll(0, 20, 60, "a", 100)
		poll(1, 25, 55, "a", 100) // the same process, sampled at another moment
		poll(2, 70, 60, "b", 100)
	}
	if a, b := bs[0].background(), bs[1].background(); a != b {
		t.Fatalf("servers sharing a process: %v and %v", a, b)
	}
	procA, procB := pl.load.members[bs[0]].proc.bg, pl.load.members[bs[2]].proc.bg
	if procA > 0.05 {
		t.Errorf("process a's background %.3f of its capacity: its CPU is all requests", procA)
	}
	if procB < 0.15 || procB > 0.25 {
		t.Errorf("process b's background %.3f of its capacity, want about 0.2 (60%% of one of 2 cores, less the noise floor)", procB)
	}
	if c := pl.load.cost; c < 0.0008 || c > 0.0012 {
		t.Errorf("estimated cost per request %v s, want about 0.001", c)
	}
	// A server restarted as a new process leaves its old group behind.
	for range 3 {
		poll(2, 10, 60, "c", 100)
	}
	if _, ok := pl.load.groups["proc h b"]; ok {
		t.Error("the dead process's group is still kept")
	}
	// Nonsense figures neither poison the model nor stop the choice.
	poll(0, math.NaN(), math.Inf(1), "a", 100)
	poll(1, -50, -1, "a", 100)
	for _, b := range bs {
		if v := b.background(); math.IsNaN(v) || v < 0 || v > 2 {
			t.Fatalf("after nonsense reports, a figure of %v", v)
		}
	}
	if pick(LeastLoad(), bs, nil, rand.New(rand.NewPCG(1, 1))) == nil {
		t.Fatal("no server picked after nonsense reports")
	}
}
