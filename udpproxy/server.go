package udpproxy

import (
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
)

// Server is one calculator server as the proxy sees it. A Policy reads it
// through its exported methods, which only read; everything the hot path
// reads is atomic, so choosing a server never waits on a lock.
//
// Its fields come in four groups, each written by one part of the proxy
// only, so that "who changed this?" has one answer:
//
//   - identity: who it is and where. The membership (membership.go) sets
//     it when the server is listed, and alone changes srv and removed.
//   - state: whether it takes work. Only the membership writes it, by the
//     rules of health.go, and rebuilds the rotation with every change: a
//     server is out because it is down (missed polls), draining (its own
//     report) or ejected (passive health: its calculator port stopped
//     answering).
//   - polled: what status polls and canaries learn. Only the poller
//     (poll.go, and its load model, load.go) writes it.
//   - traffic: what the requests themselves show. Only the loops that move
//     datagrams (client.go, upstream.go, retry.go) write it.
type Server struct {
	// Identity: the membership's.
	addr    ServerAddr
	calc    netip.AddrPort
	status  netip.AddrPort
	source  source        // where the proxy learned of it
	srv     atomic.Uint32 // its SRV record's priority and weight (srvRank); 0 for other sources
	removed atomic.Bool   // it has left the list for good

	state   serverState // the membership's
	polled  polled      // the poller's
	traffic traffic     // the data path's
}

// source says where a server came from.
type source uint8

const (
	fromConfig source = iota // -server: stays for the proxy's life
	fromJoin                 // udpserver -join: leaves after MaxMisses missed polls
	fromSRV                  // DNS SRV records: follows the answer
)

func (s source) String() string {
	switch s {
	case fromJoin:
		return "join"
	case fromSRV:
		return "srv"
	}
	return "config"
}

// serverState is whether a server takes work, and why not. The membership
// writes it, under its lock but for the atomics the data path reports
// through (fails); the flags are atomic so that Stats and the rotation's
// rebuild read them without that lock.
type serverState struct {
	down     atomic.Bool  // missed MaxMisses polls in a row
	draining atomic.Bool  // the server says it is going away: no new work
	misses   atomic.Int32 // polls in a row left unanswered

	// Passive health (health.go).
	ejected   atomic.Bool            // out of rotation until a canary is answered
	fails     atomic.Int32           // tries in a row that got no answer
	ejections atomic.Uint64          // times ejected
	reason    atomic.Pointer[string] // why it was ejected, nil when it is not
	since     atomic.Int64           // nanotime of the ejection
	until     atomic.Int64           // nanotime from which canaries go
	streak    int                    // ejections with no quiet spell between them; under membership.mu
	lastBack  int64                  // nanotime of the last return, 0 before any; under membership.mu
}

// polled is what polls learn of a server. The poller writes it; the hot
// path reads report and background.
type polled struct {
	every      atomic.Int64           // the interval it is polled at now (ns), for judging a report's age
	report     atomic.Pointer[report] // last status reply, nil before the first
	background atomic.Uint64          // float64 bits: the share of its capacity busy with work the proxy did not send (load.go)
	hedgeAfter atomic.Int64           // ns a try may wait before it is hedged, from its recent replies (hedge.go); 0 before
	pollID     atomic.Uint64          // the poll awaiting an answer, 0 when none
	canaryID   atomic.Uint64          // the canary awaiting an answer, 0 when none
	sched      pollSchedule           // its place in the schedule: the scheduler goroutine's alone
}

// pollSchedule is a server's place in the poller's schedule.
type pollSchedule struct {
	next   int64  // nanotime the next poll is due; 0 before the server's first
	sentAt int64  // nanotime the poll awaiting an answer went, 0 when none
	id     uint64 // that poll's ID
}

// traffic is what the proxy's own requests show of a server.
type traffic struct {
	inFlight  atomic.Int64  // sent and not yet answered or expired
	latency   atomic.Uint64 // float64 bits: moving average of reply time in µs; 0 before the first
	latencyAt atomic.Int64  // nanotime of the last reply that fed it
	sent      atomic.Uint64 // requests forwarded, retries included
	answered  atomic.Uint64 // replies routed back
	timeouts  atomic.Uint64 // tries that got no answer in time
	retried   atomic.Uint64 // retries sent here after a try elsewhere timed out

	replies [replyBuckets]atomic.Uint64 // reply times, counted by bucket (hedge.go)
}

// report is one status reply and when it arrived (nanotime). It is never
// modified once stored, so readers need no lock.
type report struct {
	codec.Status
	at int64
}

func newServer(a ServerAddr, every time.Duration) (*Server, error) {
	calc, err := resolveUDP(a.Calc)
	if err != nil {
		return nil, err
	}
	status, err := resolveUDP(a.Status)
	if err != nil {
		return nil, err
	}
	return newServerAt(a, calc, status, every), nil
}

// newServerAt is newServer with the addresses already resolved.
func newServerAt(a ServerAddr, calc, status netip.AddrPort, every time.Duration) *Server {
	s := &Server{addr: a, calc: calc, status: status}
	s.polled.every.Store(int64(every))
	return s
}

// srvRank packs an SRV record's priority and weight into one word, so that
// both change together when DNS changes them.
func srvRank(priority, weight uint16) uint32 { return uint32(priority)<<16 | uint32(weight) }

// priority is s's SRV priority: lower is preferred, and servers from
// -server and joins count as 0.
func (s *Server) priority() uint16 { return uint16(s.srv.Load() >> 16) }

// weight is s's SRV weight, 0 for servers from other sources.
func (s *Server) weight() uint16 { return uint16(s.srv.Load()) }

// pollInterval is how often s is polled now.
func (s *Server) pollInterval() time.Duration { return time.Duration(s.polled.every.Load()) }

// Name is the server's own name once it has reported, its calculator
// address before.
func (s *Server) Name() string {
	if r := s.polled.report.Load(); r != nil && r.Server != "" {
		return r.Server
	}
	return s.addr.Calc
}

// Addr is the server's calculator and status address, as configured or
// learned.
func (s *Server) Addr() ServerAddr { return s.addr }

// InFlight is how many requests the proxy has sent the server that are
// neither answered nor timed out.
func (s *Server) InFlight() int64 { return s.traffic.inFlight.Load() }

// takesWork reports whether s is fit for new work on every count: polled
// and answering, not draining, not ejected.
func (s *Server) takesWork() bool {
	return !s.state.down.Load() && !s.state.draining.Load() && !s.state.ejected.Load()
}

// background is the share of s's capacity that its process and its host
// spend on work the proxy did not send, as the load model last worked it
// out (load.go); 0 before its first report.
func (s *Server) background() float64 { return math.Float64frombits(s.polled.background.Load()) }

// latencyWeight is the weight of each new reply in the latency average:
// about the last 50 replies count.
const latencyWeight = 0.02

// latencyMaxAge is how long a latency average speaks for a server. A server
// that gets no work keeps its last average; without a limit, one slow
// moment would keep it out of favour with nothing to correct it.
const latencyMaxAge = int64(time.Second)

// observe counts one reply's round trip in the histogram of reply times
// and folds it into the latency average. An
// average no reply has fed for latencyMaxAge starts again from this reply:
// a server that was slow and got no work since must be judged on how it
// answers now. Readers may race here; a lost update of an average is
// harmless.
func (t *traffic) observe(rtt time.Duration, now int64) {
	t.replies[replyBucket(rtt)].Add(1)
	us := float64(rtt) / float64(time.Microsecond)
	if old := t.latencyUS(); old > 0 && now-t.latencyAt.Load() <= latencyMaxAge {
		us = old + latencyWeight*(us-old)
	}
	t.latency.Store(math.Float64bits(max(us, 1)))
	t.latencyAt.Store(now)
}

func (t *traffic) latencyUS() float64 { return math.Float64frombits(t.latency.Load()) }

// recentLatencyUS is the latency average if a reply fed it lately, else 0.
func (t *traffic) recentLatencyUS(now int64) float64 {
	if now-t.latencyAt.Load() > latencyMaxAge {
		return 0
	}
	return t.latencyUS()
}

// hedgeAfter is how long a try at s may wait before it is hedged.
func (s *Server) hedgeAfter() int64 {
	if d := s.polled.hedgeAfter.Load(); d > 0 {
		return d
	}
	return int64(hedgeMax) // no replies seen yet: hedge late rather than early
}
