package udpproxy

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
)

// backend is one calculator server as the proxy sees it: where it is, what
// it last reported, how much the proxy has sent it that is not yet answered,
// and whether it is in rotation. Everything the hot path reads is atomic, so
// choosing a server never waits on the poller.
type backend struct {
	addr   ServerAddr
	calc   netip.AddrPort
	status netip.AddrPort

	inFlight atomic.Int64           // sent and not yet answered or expired
	report   atomic.Pointer[report] // last status reply, nil before the first
	down     atomic.Bool            // out of rotation
	misses   atomic.Int32           // polls in a row left unanswered
	pollID   atomic.Uint64          // the poll awaiting an answer, 0 when none

	sent     atomic.Uint64 // requests forwarded, retries included
	answered atomic.Uint64 // replies routed back
	timeouts atomic.Uint64 // tries that got no answer in time
}

// report is one status reply and when it arrived. It is never modified once
// stored, so readers need no lock.
type report struct {
	codec.Status
	at time.Time
}

func newBackend(a ServerAddr) (*backend, error) {
	calc, err := resolveUDP(a.Calc)
	if err != nil {
		return nil, err
	}
	status, err := resolveUDP(a.Status)
	if err != nil {
		return nil, err
	}
	return &backend{addr: a, calc: calc, status: status}, nil
}

// name is the server's own name once it has reported, its address before.
func (b *backend) name() string {
	if r := b.report.Load(); r != nil && r.Server != "" {
		return r.Server
	}
	return b.addr.Calc
}

// up reports whether the backend is in rotation. A backend that has not
// been polled yet counts as up: the first requests need not wait for a poll,
// and a dead one is found by the try timeout and by the poller alike.
func (b *backend) up() bool { return !b.down.Load() }

// BackendStats is a snapshot of one backend, for the stats command, tests
// and monitoring.
type BackendStats struct {
	Name      string
	Addr      ServerAddr
	Up        bool
	HasReport bool
	Report    codec.Status  // the last status reply
	ReportAge time.Duration // since the last status reply
	InFlight  int64
	Sent      uint64
	Answered  uint64
	Timeouts  uint64
}

func (b *backend) stats(now time.Time) BackendStats {
	s := BackendStats{
		Name:     b.name(),
		Addr:     b.addr,
		Up:       b.up(),
		InFlight: b.inFlight.Load(),
		Sent:     b.sent.Load(),
		Answered: b.answered.Load(),
		Timeouts: b.timeouts.Load(),
	}
	if r := b.report.Load(); r != nil {
		s.HasReport, s.Report, s.ReportAge = true, r.Status, now.Sub(r.at)
	}
	return s
}
