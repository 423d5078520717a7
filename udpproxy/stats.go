package udpproxy

import (
	"runtime"
	"strconv"
	"time"

	"github.com/discal/discal/codec"
)

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

func serverStats(s *Server, now int64, f *fleet, inRotation bool) ServerStats {
	t := &s.traffic
	st := ServerStats{
		Name:       s.Name(),
		Addr:       s.addr,
		Up:         !s.state.down.Load(),
		Draining:   s.state.draining.Load(),
		InRotation: inRotation,
		InFlight:   t.inFlight.Load(),
		LatencyUS:  t.latencyUS(),
		Sent:       t.sent.Load(),
		Answered:   t.answered.Load(),
		Timeouts:   t.timeouts.Load(),
		Retries:    t.retried.Load(),
		Source:     s.source.String(),
		Score:      f.score(s, now),
		Cores:      int(f.cores(s)),
		Priority:   s.priority(),
		Weight:     s.weight(),
	}
	st.Ejected, st.EjectReason, st.EjectedFor, st.Ejections = ejectionOf(s, now)
	if r := s.polled.report.Load(); r != nil {
		st.HasReport, st.Report, st.ReportAge = true, r.Status, time.Duration(now-r.at)
	}
	return st
}

// Stats is a snapshot of the proxy's counters and servers.
type Stats struct {
	Requests, Text, Replies, Retries, Timeouts, NoServer, Busy uint64
	Joins                                                      uint64 // joins taken, repeats included
	Hedges, HedgeWins                                          uint64 // hedges sent; of those, answered first
	RxBuffers                                                  uint64 // buffers read on the client socket: a datagram, or a client's GSO batch (see Drops["rx_overflow"])
	Pending                                                    int
	Drops                                                      map[string]uint64
	Servers                                                    []ServerStats
}

// stats is Stats for one snapshot of the membership, which the list's
// changes cannot disturb.
func (r *router) stats(ro *roster) Stats {
	s := Stats{
		Requests:  r.requests.Load(),
		Text:      r.text.Load(),
		Replies:   r.replies.Load(),
		Retries:   r.retries.Load(),
		Timeouts:  r.timeouts.Load(),
		NoServer:  r.noServer.Load(),
		Busy:      r.busy.Load(),
		Joins:     r.joins.Load(),
		Hedges:    r.hedges.Load(),
		HedgeWins: r.hedgeWon.Load(),
		RxBuffers: r.rx.buffers.Load(),
		Pending:   r.pending.Len(),
		Drops:     make(map[string]uint64, numDropReasons),
	}
	for i := range r.drops {
		s.Drops[dropNames[i]] = r.drops[i].Load()
	}
	s.Drops[dropRxOverflow] = r.rx.count()
	now, f := nanotime(), r.poller.fleet.Load()
	inRotation := make(map[*Server]bool, len(ro.rotation))
	for _, sv := range ro.rotation {
		inRotation[sv] = true
	}
	for _, sv := range ro.all {
		s.Servers = append(s.Servers, serverStats(sv, now, f, inRotation[sv]))
	}
	return s
}

// appendStatsText is the answer to the text command "stats": one line for
// the proxy, then one per server.
//
//	proxy policy=least-load pending=0 requests=10 replies=10 retries=0 timeouts=0 no_server=0 busy=0 dropped=0
//	s1 127.0.0.1:7001 up host_cpu=12.0% proc_cpu=3.1% cores=2 in_flight=0 latency=153µs age=42ms sent=4 answered=4 timeouts=0 score=0.000
//	s2 127.0.0.1:7002 ejected host_cpu=3.0% proc_cpu=0.1% cores=2 in_flight=0 latency=0s age=12ms sent=9 answered=2 timeouts=7 score=0.000 ejections=1 ejected_for=1.2s reason="5 tries in a row got no answer"
func (r *router) appendStatsText(b []byte) []byte {
	all := r.members.snap.Load()
	s := r.stats(all)
	var dropped uint64
	for _, n := range s.Drops {
		dropped += n
	}
	b = append(b, "proxy policy="...)
	b = append(b, r.cfg.Policy.String()...)
	b = appendKV(b, "pending", uint64(s.Pending))
	b = appendKV(b, "requests", s.Requests)
	b = appendKV(b, "replies", s.Replies)
	b = appendKV(b, "retries", s.Retries)
	b = appendKV(b, "timeouts", s.Timeouts)
	b = appendKV(b, "no_server", s.NoServer)
	b = appendKV(b, "busy", s.Busy)
	b = appendKV(b, "hedges", s.Hedges)
	b = appendKV(b, "dropped", dropped)
	b = appendKV(b, "servers", uint64(len(all.all)))
	b = appendKV(b, "in_rotation", uint64(len(all.rotation)))
	b = appendKV(b, "goroutines", uint64(runtime.NumGoroutine()))
	b = append(b, '\n')
	for i, bs := range s.Servers {
		if len(b) > maxStatsText {
			// A datagram holds 65,507 bytes at most: say what is left out
			// rather than send nothing.
			b = append(b, "... "...)
			b = strconv.AppendInt(b, int64(len(s.Servers)-i), 10)
			b = append(b, " more servers; see the metrics for all\n"...)
			break
		}
		b = appendServerLine(b, &bs)
	}
	return b
}

// appendServerLine is one server's line of the stats text.
func appendServerLine(b []byte, bs *ServerStats) []byte {
	b = append(b, bs.Name...)
	b = append(b, ' ')
	b = append(b, bs.Addr.Calc...)
	switch {
	case !bs.Up:
		b = append(b, " down"...)
	case bs.Ejected:
		b = append(b, " ejected"...)
	case bs.Draining:
		b = append(b, " draining"...)
	default:
		b = append(b, " up"...)
	}
	if bs.HasReport {
		b = append(b, " host_cpu="...)
		b = strconv.AppendFloat(b, bs.Report.HostCPU, 'f', 1, 64)
		b = append(b, "% proc_cpu="...)
		b = strconv.AppendFloat(b, bs.Report.ProcCPU, 'f', 1, 64)
		b = append(b, '%')
		b = appendKV(b, "cores", uint64(bs.Report.Cores))
		if bs.Cores != bs.Report.Cores {
			// A claim the proxy does not believe (score.go): the score
			// uses what it does.
			b = appendKV(b, "believed_cores", uint64(bs.Cores))
		}
	} else {
		b = append(b, " no_report"...)
	}
	b = append(b, " in_flight="...)
	b = strconv.AppendInt(b, bs.InFlight, 10)
	b = append(b, " latency="...)
	b = append(b, (time.Duration(bs.LatencyUS) * time.Microsecond).String()...)
	if bs.HasReport {
		b = append(b, " age="...)
		b = append(b, bs.ReportAge.Round(time.Millisecond).String()...)
	}
	b = appendKV(b, "sent", bs.Sent)
	b = appendKV(b, "answered", bs.Answered)
	b = appendKV(b, "timeouts", bs.Timeouts)
	b = append(b, " score="...)
	b = strconv.AppendFloat(b, bs.Score, 'f', 3, 64)
	if bs.Ejections > 0 {
		b = appendKV(b, "ejections", bs.Ejections)
	}
	if bs.Ejected {
		b = append(b, " ejected_for="...)
		b = append(b, bs.EjectedFor.Round(time.Millisecond).String()...)
		b = append(b, " reason="...)
		b = strconv.AppendQuote(b, bs.EjectReason)
	}
	if bs.Source == "srv" {
		b = appendKV(b, "priority", uint64(bs.Priority))
		b = appendKV(b, "weight", uint64(bs.Weight))
	}
	if bs.Source != "config" {
		// Last on the line, where it has always been.
		b = append(b, " via="...)
		b = append(b, bs.Source...)
	}
	return append(b, '\n')
}

// maxStatsText is where the stats text stops adding server lines: one more
// line (at most a few hundred bytes, a name being at most 64) and the
// closing note still fit in one UDP datagram.
const maxStatsText = 64000

func appendKV(b []byte, k string, v uint64) []byte {
	b = append(b, ' ')
	b = append(b, k...)
	b = append(b, '=')
	return strconv.AppendUint(b, v, 10)
}
