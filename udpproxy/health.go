package udpproxy

import (
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discal/discal/internal/loglimit"
)

// Health: which servers take new work, and passive health, which ejects a
// server whose calculator port stopped answering.
//
// The status port says what a server claims; the calculator port is what
// matters. A server whose status port answers while its calculator port is
// dead (a firewall, a wedged worker, a lying status port) would stay in
// rotation forever on polls alone, and every request sent there would wait
// the whole try timeout. So the answers themselves are watched, the way
// nginx (max_fails, fail_timeout) and Envoy (outlier detection) do:
//
//   - MaxFails tries in a row that get no answer eject the server for
//     EjectTime, doubled each time it is ejected again soon after it came
//     back (up to 32 times), so a flapping server spends longer out.
//   - A status answer never brings it back. Once its time is up, the poller
//     sends a canary calculation to its calculator port with every poll; the
//     first right answer returns it to rotation.
//   - At most MaxEjectPercent of the servers are ejected at once: a network
//     blip that times out every server must not empty the rotation.

// serverHealth is one server's passive health. fails and ejected are read
// and written on the hot path; the rest changes only at an ejection or a
// return, under health.mu.
type serverHealth struct {
	fails     atomic.Int32  // tries in a row that got no answer
	ejected   atomic.Bool   // out of rotation until a canary is answered
	canaryID  atomic.Uint64 // the canary awaiting an answer, 0 when none
	ejections atomic.Uint64 // times ejected

	reason   atomic.Pointer[string] // why it was ejected, nil when it is not
	since    atomic.Int64           // nanotime of the ejection
	until    int64                  // nanotime from which canaries go
	streak   int                    // ejections with no quiet spell between them
	lastBack int64                  // nanotime of the last return, 0 before any
}

// health applies the passive health rules to every server.
type health struct {
	maxFails    int32
	ejectTime   time.Duration
	maxEjectPct int
	log         *slog.Logger
	listed      func() int // how many servers are in the list
	changed     func()     // a server's state changed: rebuild the rotation

	mu      sync.Mutex // serializes ejections and returns, so the cap holds
	ejected int        // servers ejected now
	capLog  loglimit.Limit
}

// maxStreak bounds the doubling of the ejection time: 2^5 × EjectTime.
const maxStreak = 5

// quietSpell is how long a server must stay in rotation after a return for
// its next ejection to count as a new one, not a repeat.
const quietSpell = 30 * time.Second

// answered notes an answer from s: its failures in a row are over. It
// writes only when there is something to reset, so that the hot path does
// not bounce the cache line between cores for nothing.
func (h *health) answered(s *Server) {
	if s.health.fails.Load() != 0 {
		s.health.fails.Store(0)
	}
}

// failed notes a try at s that got no answer in time.
func (h *health) failed(s *Server, now int64) {
	n := s.health.fails.Add(1)
	if n >= h.maxFails && !s.health.ejected.Load() {
		h.eject(s, now, strconv.Itoa(int(n))+" tries in a row got no answer")
	}
}

// maxEjected is how many of n listed servers may be ejected at once.
func (h *health) maxEjected(n int) int { return n * max(h.maxEjectPct, 0) / 100 }

// eject takes s out of rotation, unless the cap says no.
func (h *health) eject(s *Server, now int64, reason string) {
	sh := &s.health
	h.mu.Lock()
	if sh.ejected.Load() || s.removed.Load() {
		h.mu.Unlock()
		return
	}
	if h.ejected+1 > h.maxEjected(h.listed()) {
		h.mu.Unlock()
		if h.capLog.AllowAt(now) {
			h.log.Warn("udpproxy: server not ejected: too many are out already", "server", s.Name(),
				"addr", s.addr.Calc, "reason", reason, "max_eject_percent", h.maxEjectPct)
		}
		return
	}
	h.ejected++
	if sh.lastBack != 0 && now-sh.lastBack > int64(quietSpell) {
		sh.streak = 0
	}
	d := h.ejectTime << min(sh.streak, maxStreak)
	sh.streak++
	sh.reason.Store(&reason)
	sh.since.Store(now)
	sh.until = now + int64(d)
	sh.canaryID.Store(0)
	sh.ejections.Add(1)
	sh.ejected.Store(true)
	h.mu.Unlock()
	h.changed()
	h.log.Warn("udpproxy: server ejected", "server", s.Name(), "addr", s.addr.Calc, "reason", reason, "for_at_least", d)
}

// canaryDue reports whether s is ejected and its time is up, so that a
// canary should go with its next poll.
func (h *health) canaryDue(s *Server, now int64) bool {
	if !s.health.ejected.Load() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return now >= s.health.until
}

// back returns s to rotation: its calculator port answered a canary right.
func (h *health) back(s *Server, now int64) {
	sh := &s.health
	h.mu.Lock()
	if !sh.ejected.Load() {
		h.mu.Unlock()
		return
	}
	h.ejected--
	out := time.Duration(now - sh.since.Load())
	sh.lastBack = now
	sh.reason.Store(nil)
	sh.fails.Store(0)
	sh.ejected.Store(false)
	h.mu.Unlock()
	h.changed()
	h.log.Info("udpproxy: server back from ejection: its calculator port answers", "server", s.Name(),
		"addr", s.addr.Calc, "out", out.Round(time.Millisecond))
}

// forget takes a server that left the list out of the count of ejected ones.
func (h *health) forget(s *Server) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.health.ejected.Swap(false) {
		h.ejected--
	}
}

// snapshot is s's ejection state for Stats.
func (sh *serverHealth) snapshot(now int64) (ejected bool, reason string, out time.Duration, ejections uint64) {
	ejections = sh.ejections.Load()
	r := sh.reason.Load()
	if !sh.ejected.Load() || r == nil {
		return false, "", 0, ejections
	}
	return true, *r, time.Duration(now - sh.since.Load()), ejections
}

// takesWork reports whether s is fit for new work on every count: polled
// and answering, not draining, not ejected.
func (s *Server) takesWork() bool {
	return !s.down.Load() && !s.draining.Load() && !s.health.ejected.Load()
}

// rotationOf is the rule for which servers take new work: those fit on
// every count, of the best SRV priority among them (RFC 2782: a lower
// priority group takes all the work while any of it can; servers from
// -server and joins count as priority 0). If none is fit, a draining server
// is better than none (a lame duck still answers), and an ejected one
// better than no answer at all; a server that is down gets nothing.
func rotationOf(all []*Server) []*Server {
	rules := [...]func(*Server) bool{
		(*Server).takesWork,
		func(s *Server) bool { return !s.down.Load() && !s.health.ejected.Load() },
		func(s *Server) bool { return !s.down.Load() },
	}
	for _, fit := range rules {
		best, any := uint16(0), false
		for _, s := range all {
			if fit(s) && (!any || s.priority() < best) {
				best, any = s.priority(), true
			}
		}
		if !any {
			continue
		}
		var rot []*Server
		for _, s := range all {
			if fit(s) && s.priority() == best {
				rot = append(rot, s)
			}
		}
		return rot
	}
	return nil
}
