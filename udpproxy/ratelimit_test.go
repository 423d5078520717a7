package udpproxy

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestLimiterKeys: sources that share a bucket are the ones one host can
// hold (one IPv4 address in either spelling, one IPv6 /64); any other
// source has its own.
func TestLimiterKeys(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		share bool
	}{
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "::ffff:192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"fe80::1%eth0", "fe80::2%eth1", true},
		{"::1", "::2", true},
	} {
		t.Run(tc.a+"_"+tc.b, func(t *testing.T) {
			now := time.Unix(1000, 0)
			l := newLimiter(1, 1) // one request, then one a second
			if !l.allow(netip.MustParseAddr(tc.a), now) {
				t.Fatal("the first request was shed")
			}
			got := l.allow(netip.MustParseAddr(tc.b), now)
			if got == tc.share {
				t.Fatalf("second source allowed = %v; want it to share the first's bucket: %v", got, tc.share)
			}
		})
	}
}

// TestLimiterRate: a source gets its burst, then its rate; idle buckets are
// forgotten.
func TestLimiterRate(t *testing.T) {
	l := newLimiter(10, 3)
	a := netip.MustParseAddr("192.0.2.7")
	now := time.Unix(1000, 0)
	n := 0
	for i := range 100 { // one simulated second at 100 requests a second
		if l.allow(a, now.Add(time.Duration(i)*10*time.Millisecond)) {
			n++
		}
	}
	// 3 of burst plus 10 a second over 0.99 s: 12 or 13.
	if n < 12 || n > 13 {
		t.Fatalf("%d of 100 allowed in one second at rate 10, burst 3", n)
	}
	if l.sources() != 1 {
		t.Fatalf("%d sources kept, want 1", l.sources())
	}
	l.forget(now.Add(2 * time.Second))
	if l.sources() != 0 {
		t.Fatalf("%d sources kept after forget, want 0", l.sources())
	}
}

// TestLimiterFullTableSpills: beyond the bound, new sources share one
// bucket, while the sources already known keep their own.
func TestLimiterFullTableSpills(t *testing.T) {
	l := newLimiter(1, 1)
	l.max = 64
	now := time.Unix(1000, 0)
	known := netip.MustParseAddr("10.255.0.1")
	if !l.allow(known, now) {
		t.Fatal("the known source's first request was shed")
	}
	spilled := 0
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if !l.allow(a, now) {
			spilled++
		}
	}
	if n := l.sources(); n > l.max {
		t.Fatalf("%d sources kept, bound %d", n, l.max)
	}
	// Each shard holds max/16 = 4; every source beyond shares the spill
	// bucket (burst 1): of the ~935 beyond the table, all but one are shed.
	if spilled < 1000-l.max-1 {
		t.Fatalf("only %d of 1000 new sources shed with a table of %d", spilled, l.max)
	}
	if !l.allow(known, now.Add(time.Second)) {
		t.Fatal("a known source lost its own bucket while the table was full")
	}
}

// BenchmarkLimiterSources fills the table and reports its memory per
// source (the figure behind maxSources' comment) and the cost of allow.
func BenchmarkLimiterSources(b *testing.B) {
	const n = 1 << 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := newLimiter(100, 10)
	now := time.Unix(1000, 0)
	for i := range n {
		l.allow(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSource := float64(after.HeapAlloc-before.HeapAlloc) / n
	b.ResetTimer() // which also drops reported metrics: report after
	for i := range b.N {
		l.allow(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), now)
	}
	b.ReportMetric(perSource, "B/source")
}
