package udpproxy

import (
	"math/bits"
	"time"
)

// Hedged requests. Every operation is a pure function, so asking a second
// server is always safe. A try that has waited longer than its server's
// recent 95th percentile reply time (bounded to hedgeMin-hedgeMax) gets a
// copy sent to another server in rotation, and whichever answer comes
// first is relayed ("The Tail at Scale", Dean and Barroso; Envoy and gRPC
// hedge the same way). It is what least-load cannot do for the requests
// already sent to a server that stalls (a GC pause, a noisy neighbour, a
// SIGSTOP): the score stops choosing it after a few requests, but those
// few would wait out the stall. Hedges are capped by a budget, a share of
// the requests (Config.HedgeBudget), so that an overloaded fleet is not
// asked twice as much; Config.NoHedge turns them off.
//
// This file holds what hedging is made of: its bounds, the reply-time
// histogram and the budget. Each part that acts lives with the one who
// acts. The poller works out each server's hedge delay from the
// histogram (poll.go, hedgeDelays; Server.hedgeAfter reads it). The pass
// that expires tries (retry.go, sendHedges), every hedgeTick while
// requests are pending, made by a reader after its batch or else by the
// sweeper, finds the tries past their delay in the same walk over the
// pending table and sends the copies. The copy is the same entry in the
// pending table under a second ID, in the same shard (pending.go,
// pendingTable.hedge), so that the first answer takes it whole and the
// second finds nothing, as a late answer does. The request's deadline
// stays its first try's: a hedge is an early try, not a retry.

const (
	// hedgeMin and hedgeMax bound the hedge delay. Below a millisecond a
	// hedge would race the answers of a healthy server on a LAN, and the
	// sweeper's timer is no finer; past 50 ms a hedge comes too late to
	// help an interactive client, and a server that slow is for the score
	// and passive health to deal with.
	hedgeMin = time.Millisecond
	hedgeMax = 50 * time.Millisecond
	// hedgeTick is how often a pass looks for tries to hedge while
	// requests are pending: a hedge goes at most this late (sweepSlack
	// more when the readers fall silent right after a pass).
	hedgeTick = 2 * time.Millisecond
	// hedgeBurst is how many hedges the budget may save up.
	hedgeBurst = 20
	// hedgeEvery is how often the poller works out each server's hedge
	// delay from the replies since the last time, and hedgeSamples how
	// many replies that takes at least.
	hedgeEvery   = 200 * time.Millisecond
	hedgeSamples = 20
)

// The reply-time histogram each server's traffic keeps: 64 buckets, four a
// doubling, from 16 µs to about a second. Its counts only grow; the poller
// works on their differences.
const (
	replyBuckets      = 64
	replyBucketBaseUS = 16
)

// replyBucket is the bucket of a reply time: the data path calls it for
// every reply, so it is a few bit operations.
func replyBucket(rtt time.Duration) int {
	us := uint64(max(rtt, 0) / time.Microsecond)
	if us < replyBucketBaseUS {
		return 0
	}
	octave := bits.Len64(us) - 1 // 4 or more
	quarter := int(us>>(octave-2)) & 3
	return min((octave-4)*4+quarter, replyBuckets-1)
}

// replyBucketTop is the end of bucket i: each doubling from 16 µs is cut
// in four equal quarters.
func replyBucketTop(i int) time.Duration {
	octave, quarter := i/4, i%4
	return time.Duration(replyBucketBaseUS<<octave*(5+quarter)/4) * time.Microsecond
}

// hedgeBudget is the sweeper's token bucket: budget tokens for every
// request read, a hedge spends one, at most hedgeBurst saved.
type hedgeBudget struct {
	per      float64 // tokens a request
	tokens   float64
	requests uint64 // requests counted so far
}

// allow reports whether a hedge may go, with requests read so far.
func (b *hedgeBudget) allow(requests uint64) bool {
	b.tokens = min(b.tokens+b.per*float64(requests-b.requests), hedgeBurst)
	b.requests = requests
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
