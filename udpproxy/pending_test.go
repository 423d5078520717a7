package udpproxy

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/discal/discal/codec"
)

func testBackend(t testing.TB, calc string) *backend {
	t.Helper()
	b, err := newBackend(ServerAddr{Calc: calc, Status: calc})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPendingTakeChecksSource(t *testing.T) {
	tab := newPendingTable(10)
	b := testBackend(t, "127.0.0.1:7001")
	e := tab.get(42)
	e.backend, e.clientID = b, 7
	if !tab.put(42, e) {
		t.Fatal("put failed")
	}
	if tab.put(42, tab.get(42)) {
		t.Fatal("a second put under one ID succeeded")
	}
	tab.size.Add(-1) // the entry of the failed put was never released

	if got, forged := tab.take(42, netip.MustParseAddrPort("127.0.0.1:7002")); got != nil || !forged {
		t.Fatalf("take from the wrong port = %v, forged %v", got, forged)
	}
	if got, forged := tab.take(43, b.calc); got != nil || forged {
		t.Fatalf("take of an unknown ID = %v, forged %v", got, forged)
	}
	got, forged := tab.take(42, b.calc)
	if got != e || forged || got.clientID != 7 {
		t.Fatalf("take from the backend = %v, forged %v", got, forged)
	}
	if again, _ := tab.take(42, b.calc); again != nil {
		t.Fatal("an entry was taken twice")
	}
	tab.release(42, got)
	if tab.Len() != 0 {
		t.Fatalf("Len = %d after release", tab.Len())
	}
}

func TestPendingLimit(t *testing.T) {
	tab := newPendingTable(3)
	for i := range 3 {
		if tab.get(uint64(i)) == nil {
			t.Fatalf("get %d refused below the limit", i)
		}
	}
	if tab.get(99) != nil {
		t.Fatal("get beyond the limit succeeded")
	}
	if tab.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tab.Len())
	}
}

// TestPendingExpiresExactlyOnce puts entries with spread deadlines, takes
// some as answered, and checks that expiry yields exactly the others, each
// once, and only when due.
func TestPendingExpiresExactlyOnce(t *testing.T) {
	tab := newPendingTable(100000)
	b := testBackend(t, "127.0.0.1:7001")
	r := rand.New(rand.NewPCG(1, 1))
	const n = 5000
	ids := make([]uint64, n)
	for i := range n {
		id := r.Uint64()
		ids[i] = id
		e := tab.get(id)
		e.backend = b
		e.deadline = int64(i) // put in deadline order, as the proxy does
		if !tab.put(id, e) {
			t.Fatal("put failed")
		}
	}
	answered := map[uint64]bool{}
	for i := 0; i < n; i += 3 {
		e, _ := tab.take(ids[i], b.calc)
		tab.release(ids[i], e)
		answered[ids[i]] = true
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
	b := p.backends()[0]
	e := p.pending.get(5)
	e.backend = b
	p.pending.put(5, e)
	reply := codec.AppendReply(nil, 5, codec.Reply{Result: codec.IntNumber(666)})
	rd := p.newReader(nil)
	p.handleUpstream(rd, 0, reply, netip.MustParseAddrPort("127.0.0.1:9999")) // wrong source
	p.handleUpstream(rd, 1, codec.AppendReply(nil, 6, codec.Reply{}), b.calc) // unknown ID
	if p.drops[dropForged].Load() != 1 || p.drops[dropUnknown].Load() != 1 {
		t.Fatalf("forged %d, unknown %d; want 1 and 1", p.drops[dropForged].Load(), p.drops[dropUnknown].Load())
	}
	if p.pending.Len() != 1 {
		t.Fatal("a forged reply removed the pending entry")
	}
}

func BenchmarkPendingPutTake(b *testing.B) {
	tab := newPendingTable(1 << 20)
	be := testBackend(b, "127.0.0.1:7001")
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		id := r.Uint64()
		e := tab.get(id)
		e.backend = be
		tab.put(id, e)
		e, _ = tab.take(id, be.calc)
		tab.release(id, e)
	}
}
