package udpproxy

import (
	"net"
	"sync/atomic"

	"github.com/discal/discal/internal/udpbatch"
)

// counters are the proxy's own counts, which Stats, the stats command and
// the metrics read. The data path, the membership and the poller add to
// them; nothing else writes them.
type counters struct {
	requests atomic.Uint64 // client requests read
	text     atomic.Uint64 // of those, in the text form
	replies  atomic.Uint64 // server replies routed back
	retries  atomic.Uint64 // requests sent to a second server
	timeouts atomic.Uint64 // requests answered "timeout"
	noServer atomic.Uint64 // requests answered "no server available"
	busy     atomic.Uint64 // requests answered "busy"
	joins    atomic.Uint64 // joins taken and acknowledged
	hedges   atomic.Uint64 // hedges sent: copies of a slow try to a second server (hedge.go)
	hedgeWon atomic.Uint64 // of those, the ones whose answer came first
	drops    dropCounters
	rx       rxOverflow
}

// dropReason says why a datagram got no answer.
type dropReason int

const (
	dropShort           dropReason = iota // shorter than a header
	dropMagic                             // neither the binary form nor text
	dropKind                              // a binary kind clients do not send
	dropTooLarge                          // oversized, and not a request to answer
	dropUpstream                          // a malformed datagram from the server side
	dropUnknown                           // a reply to no pending request: late, duplicate or never asked
	dropForged                            // a reply for a pending ID from an address it was not sent to
	dropStatus                            // a status reply that answers no poll
	dropForbidden                         // a command from a source that may not use it
	dropTextReply                         // a text error line: an answer, not a question
	dropRateLimited                       // over its source's rate limit
	dropJoinRefused                       // a join from outside JoinAllow, malformed, or with the list full
	dropBadText                           // a server's name or message that breaks codec's text rules (status, join or reply)
	dropUnauthenticated                   // a join without a seal that checks, with ControlKey set
	dropHedgeLost                         // the later answer of a hedged request, after the first was relayed
	numDropReasons
)

var dropNames = [numDropReasons]string{"short", "magic", "kind", "too_large", "upstream_malformed",
	"unknown_reply", "forged_reply", "status", "forbidden", "text_reply", "rate_limited", "join_refused", "bad_text",
	"unauthenticated", "hedge_lost"}

type dropCounters [numDropReasons]atomic.Uint64

func (d *dropCounters) add(r dropReason) { d[r].Add(1) }

// dropRxOverflow names the datagrams the kernel dropped on the client
// socket before the proxy read them: its receive queue was full. The
// kernel counts them, not the proxy, so they have no dropReason.
const dropRxOverflow = "rx_overflow"

// rxOverflow asks the kernel how many client datagrams it dropped unread:
// one system call, made for Stats, the stats command and a scrape only.
//
// The kernel counts buffers: a datagram, or a client's UDP GSO batch of up
// to 64 datagrams, which the proxy's socket takes whole (GRO) because
// splitting each on arrival costs a reader of such clients a quarter more
// CPU. So the client readers count the buffers they read too (buffers):
// buffers read plus buffers dropped is what arrived. For clients that send
// a datagram at a time, as udpclient and netcat do, a buffer is a datagram.
type rxOverflow struct {
	conn    atomic.Pointer[socket] // the client socket, once Serve has it
	drops   udpbatch.DropCounter
	buffers atomic.Uint64 // buffers the client readers read
}

// socket holds a net.PacketConn, so that an atomic pointer can.
type socket struct{ net.PacketConn }

// count is 0 before Serve and where the system does not say, and keeps its
// last count once the socket is closed.
func (o *rxOverflow) count() uint64 {
	s := o.conn.Load()
	if s == nil {
		return 0
	}
	return o.drops.Read(s.PacketConn)
}
