package udpproxy

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestReplyBucket: every reply time falls in a bucket whose top is at
// least it and at most a quarter-doubling above its bottom, in order.
func TestReplyBucket(t *testing.T) {
	last := 0
	for d := time.Duration(0); d < 2*time.Second; d += d/50 + time.Microsecond {
		i := replyBucket(d)
		if i < last {
			t.Fatalf("%v in bucket %d, after a shorter time in %d", d, i, last)
		}
		last = i
		if i < replyBuckets-1 && replyBucketTop(i) < d {
			t.Fatalf("%v in bucket %d, whose top is %v", d, i, replyBucketTop(i))
		}
		if i > 0 && replyBucketTop(i-1) > d+d/5+time.Microsecond {
			t.Fatalf("%v in bucket %d, but bucket %d reaches %v", d, i, i-1, replyBucketTop(i-1))
		}
	}
	if replyBucket(-time.Second) != 0 || replyBucket(time.Hour) != replyBuckets-1 {
		t.Fatal("times out of range are not in the end buckets")
	}
}

// TestHedgeDelay: a server's hedge delay is the 95th percentile of its
// replies since the last look, within hedgeMin-hedgeMax, and stays as it
// is while too few replies came.
func TestHedgeDelay(t *testing.T) {
	s := testBackend(t, "127.0.0.1:7001")
	if s.hedgeAfter() != int64(hedgeMax) {
		t.Fatalf("hedge delay %v before any reply, want %v", time.Duration(s.hedgeAfter()), hedgeMax)
	}
	h := hedgeDelays{}
	feed := func(n int, d time.Duration) {
		for range n {
			s.traffic.observe(d, nanotime())
		}
	}
	feed(95, 3*time.Millisecond)
	feed(5, 30*time.Millisecond)
	h.update([]*Server{s})
	if got := time.Duration(s.hedgeAfter()); got < 3*time.Millisecond || got > 4*time.Millisecond {
		t.Fatalf("hedge delay %v for 95 replies of 3 ms and 5 of 30 ms, want about 3 ms", got)
	}
	feed(hedgeSamples-1, 40*time.Millisecond) // too few to say
	h.update([]*Server{s})
	if got := time.Duration(s.hedgeAfter()); got > 4*time.Millisecond {
		t.Fatalf("hedge delay %v after too few replies, want it kept", got)
	}
	feed(1, 40*time.Millisecond) // with these, enough: all slow now
	h.update([]*Server{s})
	if got := time.Duration(s.hedgeAfter()); got < 40*time.Millisecond || got > hedgeMax {
		t.Fatalf("hedge delay %v after replies of 40 ms, want 40-50 ms", got)
	}
	feed(100, 10*time.Microsecond)
	h.update([]*Server{s})
	if got := time.Duration(s.hedgeAfter()); got != hedgeMin {
		t.Fatalf("hedge delay %v after fast replies, want the floor %v", got, hedgeMin)
	}
	feed(100, time.Second)
	h.update([]*Server{s})
	if got := time.Duration(s.hedgeAfter()); got != hedgeMax {
		t.Fatalf("hedge delay %v after replies of a second, want the ceiling %v", got, hedgeMax)
	}
}

// TestHedgeBudget: hedges are a share of the requests, saved up to a
// burst at most.
func TestHedgeBudget(t *testing.T) {
	b := &hedgeBudget{per: 0.05}
	hedges := 0
	for req := uint64(1); req <= 1000; req++ {
		if b.allow(req) {
			hedges++
		}
	}
	if hedges < 45 || hedges > 50 {
		t.Fatalf("%d hedges in 1000 requests at 5%%, want about 50", hedges)
	}
	// A long quiet spell saves up no more than the burst.
	n := 0
	for b.allow(1_000_000) {
		n++
	}
	if n != hedgeBurst {
		t.Fatalf("%d hedges at once after a million requests, want the burst of %d", n, hedgeBurst)
	}
}

// TestHedgedEntry: the first answer of a hedged request is relayed and the
// entry stays for the other try, still in flight; that try's late answer
// takes it (late, not relayed), and an answer of either try after that
// finds nothing. Whichever try answers first, the same holds.
func TestHedgedEntry(t *testing.T) {
	for _, hedgeFirst := range []bool{false, true} {
		a, b := testBackend(t, "127.0.0.1:7001"), testBackend(t, "127.0.0.1:7002")
		tab := newPendingTable(10)
		r := rand.New(rand.NewPCG(1, 2))
		tmpl := entry{server: a, sentAt: 1, deadline: 1 << 62, origin: origin{id: 7}}
		tmpl.setRequest([]byte("request"))
		id, _ := tab.insert(r, &tmpl)
		hid, copyOf, ok := tab.hedge(r, id, b, 2, nil)
		if !ok || string(copyOf) != "request" || hid == id || tab.shard(hid) != tab.shard(id) {
			t.Fatalf("hedge = %d, %q, %v for %d", hid, copyOf, ok, id)
		}
		if _, _, ok := tab.hedge(r, id, b, 3, nil); ok {
			t.Fatal("a try was hedged twice")
		}
		first, firstFrom, second, secondFrom := id, a.calc, hid, b.calc
		if hedgeFirst {
			first, firstFrom, second, secondFrom = hid, b.calc, id, a.calc
		}
		rt, ok, _ := tab.take(first, firstFrom)
		if !ok || rt.late || rt.hedge != hedgeFirst || rt.id != 7 || tab.Len() != 1 {
			t.Fatalf("hedge first %v: the first answer: %+v, %v; %d left", hedgeFirst, rt, ok, tab.Len())
		}
		if _, ok, _ := tab.take(first, firstFrom); ok {
			t.Fatal("the first try answered twice")
		}
		if _, ok, forged := tab.take(second, firstFrom); ok || !forged {
			t.Fatal("the other try's answer was taken from the wrong server")
		}
		rt, ok, _ = tab.take(second, secondFrom)
		if !ok || !rt.late || tab.Len() != 0 {
			t.Fatalf("hedge first %v: the late answer: %+v, %v; %d left", hedgeFirst, rt, ok, tab.Len())
		}
	}
}
