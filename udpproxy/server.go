package udpproxy

import (
	"context"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
)

// backend is one calculator server as the proxy sees it: where it is, what
// it last reported, how much the proxy has sent it that is not yet answered,
// and whether it is in rotation. Everything the hot path reads is atomic, so
// choosing a server never waits on the poller.
type Server struct {
	addr   ServerAddr
	calc   netip.AddrPort
	status netip.AddrPort
	poll   time.Duration // the proxy's poll interval, for judging a report's age
	source source        // where the proxy learned of it (see membership.go)
	// stopPoll ends its poller when it leaves the list; set and called
	// under the proxy's members lock.
	stopPoll context.CancelFunc
	removed  atomic.Bool // it has left the list for good

	inFlight  atomic.Int64           // sent and not yet answered or expired
	latency   atomic.Uint64          // float64 bits: moving average of reply time in µs; 0 before the first
	latencyAt atomic.Int64           // nanotime of the last reply that fed it
	report    atomic.Pointer[report] // last status reply, nil before the first
	host      atomic.Pointer[group]  // its host's load, known from its first report
	proc      atomic.Pointer[group]  // its process's load, likewise
	rate      atomic.Uint64          // float64 bits: requests a second it has served lately, from its reports
	slowRate  atomic.Uint64          // float64 bits: the same, smoothed over about a second
	down      atomic.Bool            // out of rotation
	draining  atomic.Bool            // the server says it is going away: no new work
	fallback  *atomic.Bool           // the proxy's: every server in rotation is draining
	misses    atomic.Int32           // polls in a row left unanswered
	pollID    atomic.Uint64          // the poll awaiting an answer, 0 when none

	sent     atomic.Uint64 // requests forwarded, retries included
	answered atomic.Uint64 // replies routed back
	timeouts atomic.Uint64 // tries that got no answer in time
	retried  atomic.Uint64 // retries sent here after a try elsewhere timed out
}

// report is one status reply and when it arrived (nanotime). It is never
// modified once stored, so readers need no lock.
type report struct {
	codec.Status
	at int64
}

func newBackend(a ServerAddr, poll time.Duration, fallback *atomic.Bool) (*Server, error) {
	calc, err := resolveUDP(a.Calc)
	if err != nil {
		return nil, err
	}
	status, err := resolveUDP(a.Status)
	if err != nil {
		return nil, err
	}
	return newBackendAt(a, calc, status, poll, fallback), nil
}

// newBackendAt is newBackend with the addresses already resolved.
func newBackendAt(a ServerAddr, calc, status netip.AddrPort, poll time.Duration, fallback *atomic.Bool) *Server {
	if fallback == nil {
		fallback = new(atomic.Bool)
	}
	return &Server{addr: a, calc: calc, status: status, poll: poll, fallback: fallback}
}

// name is the server's own name once it has reported, its address before.
func (b *Server) name() string {
	if r := b.report.Load(); r != nil && r.Server != "" {
		return r.Server
	}
	return b.addr.Calc
}

// latencyWeight is the weight of each new reply in the latency average:
// about the last 50 replies count.
const latencyWeight = 0.02

// observe folds one reply's round trip into the latency average. Readers
// may race here; a lost update of an average is harmless.
func (b *Server) observe(rtt time.Duration, now int64) {
	us := float64(rtt) / float64(time.Microsecond)
	if old := math.Float64frombits(b.latency.Load()); old > 0 {
		us = old + latencyWeight*(us-old)
	}
	b.latency.Store(math.Float64bits(max(us, 1)))
	b.latencyAt.Store(now)
}

func (b *Server) latencyUS() float64 { return math.Float64frombits(b.latency.Load()) }

// latencyMaxAge is how long a latency average speaks for a server. A server
// that gets no work keeps its last average; without a limit, one slow
// moment would keep it out of favour with nothing to correct it.
const latencyMaxAge = int64(time.Second)

// recentLatencyUS is the latency average if a reply fed it lately, else 0.
func (b *Server) recentLatencyUS(now int64) float64 {
	if now-b.latencyAt.Load() > latencyMaxAge {
		return 0
	}
	return b.latencyUS()
}

// up reports whether the backend is in rotation. A backend that has not
// been polled yet counts as up: the first requests need not wait for a poll,
// and a dead one is found by the try timeout and by the poller alike.
//
// A draining server (lame duck) takes no new work, unless every server in
// rotation is draining: then any of them is better than none.
func (b *Server) up() bool {
	return !b.down.Load() && (!b.draining.Load() || b.fallback.Load())
}

// noteDraining sets allDraining when every server in rotation is draining.
func (p *Proxy) noteDraining() {
	all, any := true, false
	for _, b := range p.backends() {
		if !b.down.Load() {
			any = true
			all = all && b.draining.Load()
		}
	}
	p.allDraining.Store(any && all)
}

// ServerStats is a snapshot of one backend, for the stats command, tests
// and monitoring.
type ServerStats struct {
	Name      string
	Addr      ServerAddr
	Up        bool
	Draining  bool
	HasReport bool
	Report    codec.Status  // the last status reply
	ReportAge time.Duration // since the last status reply
	InFlight  int64
	LatencyUS float64 // moving average of reply time, 0 before the first reply
	Sent      uint64
	Answered  uint64
	Timeouts  uint64
	Retries   uint64 // retries sent to it after a try elsewhere timed out
	Source    string // how the proxy learned of it: "config", "join" or "srv"
}

func (b *Server) stats(now int64) ServerStats {
	s := ServerStats{
		Name:      b.name(),
		Addr:      b.addr,
		Up:        !b.down.Load(),
		Draining:  b.draining.Load(),
		InFlight:  b.inFlight.Load(),
		LatencyUS: b.latencyUS(),
		Sent:      b.sent.Load(),
		Answered:  b.answered.Load(),
		Timeouts:  b.timeouts.Load(),
		Retries:   b.retried.Load(),
		Source:    b.source.String(),
	}
	if r := b.report.Load(); r != nil {
		s.HasReport, s.Report, s.ReportAge = true, r.Status, time.Duration(now-r.at)
	}
	return s
}
