package udpproxy

import (
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
)

// Server is one calculator server as the proxy sees it: where it is, what
// it last reported, how much the proxy has sent it that is not yet
// answered, how its answers have gone, and whether it takes work. A Policy
// reads it through its exported methods, which only read; everything the
// hot path reads is atomic, so choosing a server never waits on the poller.
//
// Three things keep a server out of rotation, each with its own owner:
// down (the poller: missed status polls), draining (the server's own
// report) and ejected (passive health, health.go: its calculator port
// stopped answering).
type Server struct {
	addr    ServerAddr
	calc    netip.AddrPort
	status  netip.AddrPort
	poll    atomic.Int64  // the interval it is polled at now (ns), for judging a report's age
	source  source        // where the proxy learned of it (see membership.go)
	removed atomic.Bool   // it has left the list for good
	srv     atomic.Uint32 // its SRV record's priority and weight (srvRank); 0 for other sources
	sched   pollSchedule  // its place in the poller's schedule (poll.go)

	inFlight  atomic.Int64           // sent and not yet answered or expired
	latency   atomic.Uint64          // float64 bits: moving average of reply time in µs; 0 before the first
	latencyAt atomic.Int64           // nanotime of the last reply that fed it
	report    atomic.Pointer[report] // last status reply, nil before the first
	host      atomic.Pointer[group]  // its host's load, known from its first report
	proc      atomic.Pointer[group]  // its process's load, likewise
	rate      atomic.Uint64          // float64 bits: requests a second it has served lately, from its reports
	slowRate  atomic.Uint64          // float64 bits: the same, smoothed over about a second
	down      atomic.Bool            // missed MaxMisses polls in a row
	draining  atomic.Bool            // the server says it is going away: no new work
	misses    atomic.Int32           // polls in a row left unanswered
	pollID    atomic.Uint64          // the poll awaiting an answer, 0 when none

	health serverHealth // passive health: failures in a row, ejection (health.go)

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

func newServer(a ServerAddr, poll time.Duration) (*Server, error) {
	calc, err := resolveUDP(a.Calc)
	if err != nil {
		return nil, err
	}
	status, err := resolveUDP(a.Status)
	if err != nil {
		return nil, err
	}
	return newServerAt(a, calc, status, poll), nil
}

// newServerAt is newServer with the addresses already resolved.
func newServerAt(a ServerAddr, calc, status netip.AddrPort, poll time.Duration) *Server {
	s := &Server{addr: a, calc: calc, status: status}
	s.poll.Store(int64(poll))
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
func (s *Server) pollInterval() time.Duration { return time.Duration(s.poll.Load()) }

// Name is the server's own name once it has reported, its calculator
// address before.
func (s *Server) Name() string {
	if r := s.report.Load(); r != nil && r.Server != "" {
		return r.Server
	}
	return s.addr.Calc
}

// Addr is the server's calculator and status address, as configured or
// learned.
func (s *Server) Addr() ServerAddr { return s.addr }

// InFlight is how many requests the proxy has sent the server that are
// neither answered nor timed out.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// latencyWeight is the weight of each new reply in the latency average:
// about the last 50 replies count.
const latencyWeight = 0.02

// observe folds one reply's round trip into the latency average. An
// average no reply has fed for latencyMaxAge starts again from this reply:
// a server that was slow and got no work since must be judged on how it
// answers now. Readers may race here; a lost update of an average is
// harmless.
func (s *Server) observe(rtt time.Duration, now int64) {
	us := float64(rtt) / float64(time.Microsecond)
	if old := math.Float64frombits(s.latency.Load()); old > 0 && now-s.latencyAt.Load() <= latencyMaxAge {
		us = old + latencyWeight*(us-old)
	}
	s.latency.Store(math.Float64bits(max(us, 1)))
	s.latencyAt.Store(now)
}

func (s *Server) latencyUS() float64 { return math.Float64frombits(s.latency.Load()) }

// latencyMaxAge is how long a latency average speaks for a server. A server
// that gets no work keeps its last average; without a limit, one slow
// moment would keep it out of favour with nothing to correct it.
const latencyMaxAge = int64(time.Second)

// recentLatencyUS is the latency average if a reply fed it lately, else 0.
func (s *Server) recentLatencyUS(now int64) float64 {
	if now-s.latencyAt.Load() > latencyMaxAge {
		return 0
	}
	return s.latencyUS()
}

// ServerStats is a snapshot of one server, for the stats command, tests
// and monitoring.
type ServerStats struct {
	Name        string
	Addr        ServerAddr
	Up          bool // answering status polls
	Draining    bool
	Ejected     bool          // out of rotation because its calculator port stopped answering
	EjectReason string        // why, while Ejected
	EjectedFor  time.Duration // how long it has been out, while Ejected
	Ejections   uint64        // times it was ejected
	InRotation  bool          // it takes new work now
	HasReport   bool
	Report      codec.Status  // the last status reply
	ReportAge   time.Duration // since the last status reply
	Cores       int           // the cores the proxy believes it has (the report, clamped)
	InFlight    int64
	LatencyUS   float64 // moving average of reply time, 0 before the first reply
	Sent        uint64
	Answered    uint64
	Timeouts    uint64
	Retries     uint64  // retries sent to it after a try elsewhere timed out
	Score       float64 // least-load's score at the moment of the snapshot (lower is better)
	Source      string  // how the proxy learned of it: "config", "join" or "srv"
	Priority    uint16  // its SRV record's priority (lower is preferred), 0 for other sources
	Weight      uint16  // its SRV record's weight, 0 for other sources
}

func (s *Server) stats(now int64, f *fleet, inRotation bool) ServerStats {
	st := ServerStats{
		Name:       s.Name(),
		Addr:       s.addr,
		Up:         !s.down.Load(),
		Draining:   s.draining.Load(),
		InRotation: inRotation,
		InFlight:   s.inFlight.Load(),
		LatencyUS:  s.latencyUS(),
		Sent:       s.sent.Load(),
		Answered:   s.answered.Load(),
		Timeouts:   s.timeouts.Load(),
		Retries:    s.retried.Load(),
		Source:     s.source.String(),
		Score:      f.score(s, now),
		Cores:      int(f.cores(s)),
		Priority:   s.priority(),
		Weight:     s.weight(),
	}
	st.Ejected, st.EjectReason, st.EjectedFor, st.Ejections = s.health.snapshot(now)
	if r := s.report.Load(); r != nil {
		st.HasReport, st.Report, st.ReportAge = true, r.Status, time.Duration(now-r.at)
	}
	return st
}
