package udpproxy

import (
	"encoding/json"
	"math"
	"time"
)

// The JSON form of Stats, served as /status.json: what the text command
// "stats" shows, under stable snake_case keys that monitoring scripts and
// the dashboard rely on. Keys are only ever added. Every key is always
// present, so a reader never has to tell "absent" from "zero"; figures that
// only a status report can give are null before the server's first report.

// statsJSON is the proxy's part of the document.
type statsJSON struct {
	Requests  uint64            `json:"requests"`
	Text      uint64            `json:"text"`
	Replies   uint64            `json:"replies"`
	Retries   uint64            `json:"retries"`
	Timeouts  uint64            `json:"timeouts"`
	NoServer  uint64            `json:"no_server"`
	Busy      uint64            `json:"busy"`
	Joins     uint64            `json:"joins"`
	Hedges    uint64            `json:"hedges"`
	HedgeWon  uint64            `json:"hedge_wins"`
	RxBuffers uint64            `json:"rx_buffers"`
	Pending   int               `json:"pending"`
	Dropped   uint64            `json:"dropped"`
	Drops     map[string]uint64 `json:"drops"`
	Servers   []ServerStats     `json:"servers"`
}

// serverJSON is one server's part.
type serverJSON struct {
	Name          string   `json:"name"`
	CalcAddr      string   `json:"calc_addr"`
	StatusAddr    string   `json:"status_addr"`
	Source        string   `json:"source"`
	Priority      uint16   `json:"srv_priority"`
	Weight        uint16   `json:"srv_weight"`
	State         string   `json:"state"`
	StateReason   string   `json:"state_reason"`
	Up            bool     `json:"up"`
	Draining      bool     `json:"draining"`
	Ejected       bool     `json:"ejected"`
	EjectReason   string   `json:"eject_reason"`
	Ejections     uint64   `json:"ejections"`
	InRotation    bool     `json:"in_rotation"`
	Score         float64  `json:"score"`
	BelievedCores int      `json:"believed_cores"`
	HasReport     bool     `json:"has_report"`
	HostCPU       *float64 `json:"host_cpu"`
	ProcCPU       *float64 `json:"proc_cpu"`
	Cores         *int     `json:"cores"`
	ReportAgeMS   *float64 `json:"report_age_ms"`
	Served        *uint64  `json:"served"`
	InFlight      int64    `json:"in_flight"`
	LatencyUS     float64  `json:"latency_us"`
	Sent          uint64   `json:"sent"`
	Answered      uint64   `json:"answered"`
	Timeouts      uint64   `json:"timeouts"`
	Retries       uint64   `json:"retries"`
}

// MarshalJSON writes the proxy's counters and every server's state.
func (s Stats) MarshalJSON() ([]byte, error) {
	j := statsJSON{
		Requests: s.Requests, Text: s.Text, Replies: s.Replies, Retries: s.Retries,
		Timeouts: s.Timeouts, NoServer: s.NoServer, Busy: s.Busy, Joins: s.Joins,
		Hedges: s.Hedges, HedgeWon: s.HedgeWins, RxBuffers: s.RxBuffers,
		Pending: s.Pending, Drops: s.Drops, Servers: s.Servers,
	}
	if j.Drops == nil {
		j.Drops = map[string]uint64{}
	}
	if j.Servers == nil {
		j.Servers = []ServerStats{} // [] rather than null: a list, even when empty
	}
	for _, n := range s.Drops {
		j.Dropped += n
	}
	return json.Marshal(j)
}

// MarshalJSON writes one server's state, why it is in that state, and its
// figures.
func (s ServerStats) MarshalJSON() ([]byte, error) {
	j := serverJSON{
		Name: s.Name, CalcAddr: s.Addr.Calc, StatusAddr: s.Addr.Status, Source: s.Source,
		Priority: s.Priority, Weight: s.Weight,
		Up: s.Up, Draining: s.Draining, HasReport: s.HasReport,
		InFlight: s.InFlight, LatencyUS: round1(s.LatencyUS),
		Sent: s.Sent, Answered: s.Answered, Timeouts: s.Timeouts, Retries: s.Retries,
	}
	j.Ejected, j.EjectReason, j.Ejections, j.InRotation = s.Ejected, s.EjectReason, s.Ejections, s.InRotation
	j.Score, j.BelievedCores = round3(s.Score), s.Cores
	j.State, j.StateReason = stateOf(s, j.Ejected, j.EjectReason)
	if s.HasReport {
		host, proc, cores := round1(s.Report.HostCPU), round1(s.Report.ProcCPU), s.Report.Cores
		age := round1(float64(s.ReportAge) / float64(time.Millisecond))
		served := s.Report.Served
		j.HostCPU, j.ProcCPU, j.Cores, j.ReportAgeMS, j.Served = &host, &proc, &cores, &age, &served
	}
	return json.Marshal(j)
}

// stateOf names a server's state for people and says why it is in it. The
// order matters: a server that is down is down whether or not it was
// draining before it went silent.
func stateOf(s ServerStats, ejected bool, ejectReason string) (state, reason string) {
	switch {
	case !s.Up && !s.HasReport:
		return "down", "its status port has not answered a poll"
	case !s.Up:
		return "down", "its status port stopped answering polls " +
			s.ReportAge.Round(time.Millisecond).String() + " ago"
	case ejected:
		if ejectReason == "" {
			ejectReason = "ejected by the proxy"
		}
		return "ejected", ejectReason
	case s.Draining:
		return "draining", "the server reports it is draining: no new work"
	case !s.HasReport:
		return "up", "not polled yet: in rotation until a poll says otherwise"
	}
	return "up", "in rotation"
}

// round3 rounds a score for people; like round1 it turns what JSON cannot
// carry into 0 (an infinite score is a server never chosen).
func round3(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}

// round1 rounds to one decimal, enough for a percentage or microseconds,
// and turns what JSON cannot carry (NaN, infinities from a hostile
// server's report) into 0.
func round1(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*10) / 10
}
