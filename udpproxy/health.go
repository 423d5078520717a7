package udpproxy

import (
	"strconv"
	"time"
)

// Health: which servers take new work, and passive health, which ejects a
// server whose calculator port stopped answering. This file holds the
// rules; the membership (membership.go) applies them, under its one lock,
// and rebuilds the rotation with every change, so that "why is this server
// out of rotation?" is answered here and there alone.
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

// health is the passive-health rules' settings and count. It belongs to
// the membership, which calls the methods named ...Locked with its lock
// held.
type health struct {
	maxFails    int32
	ejectTime   time.Duration
	maxEjectPct int
	ejected     int // servers ejected now
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
	if s.state.fails.Load() != 0 {
		s.state.fails.Store(0)
	}
}

// failed notes a try at s that got no answer in time, and returns why s
// should be ejected now, or "" while it should not.
func (h *health) failed(s *Server) (reason string) {
	n := s.state.fails.Add(1)
	if n < h.maxFails || s.state.ejected.Load() {
		return ""
	}
	return strconv.Itoa(int(n)) + " tries in a row got no answer"
}

// ejection is what came of an attempt to eject a server.
type ejection int

const (
	ejectNone ejection = iota // already out, or gone from the list
	ejectDone
	ejectCapped // MaxEjectPercent says no
)

// ejectLocked takes s out of rotation for a time it returns, unless it is
// out already, has left the list, or the cap says no. listed is how many
// servers are in the list.
func (h *health) ejectLocked(s *Server, now int64, listed int, reason string) (ejection, time.Duration) {
	st := &s.state
	switch {
	case st.ejected.Load() || s.removed.Load():
		return ejectNone, 0
	case h.ejected+1 > listed*max(h.maxEjectPct, 0)/100:
		return ejectCapped, 0
	}
	h.ejected++
	if st.lastBack != 0 && now-st.lastBack > int64(quietSpell) {
		st.streak = 0
	}
	d := h.ejectTime << min(st.streak, maxStreak)
	st.streak++
	st.reason.Store(&reason)
	st.since.Store(now)
	st.until.Store(now + int64(d))
	st.ejections.Add(1)
	st.ejected.Store(true)
	return ejectDone, d
}

// canaryDue reports whether s is ejected and its time is up, so that a
// canary should go with its next poll.
func canaryDue(s *Server, now int64) bool {
	return s.state.ejected.Load() && now >= s.state.until.Load()
}

// backLocked returns s to rotation, its calculator port having answered a
// canary right, and says how long it was out. It does nothing (false)
// unless s is ejected and its time is up: a late answer to a canary of an
// earlier ejection must not cut a new one short.
func (h *health) backLocked(s *Server, now int64) (time.Duration, bool) {
	st := &s.state
	if !canaryDue(s, now) {
		return 0, false
	}
	h.ejected--
	st.lastBack = now
	st.reason.Store(nil)
	st.fails.Store(0)
	st.ejected.Store(false)
	return time.Duration(now - st.since.Load()), true
}

// forgetLocked takes a server that left the list out of the count of
// ejected ones.
func (h *health) forgetLocked(s *Server) {
	if s.state.ejected.Swap(false) {
		h.ejected--
	}
}

// ejectionOf is s's ejection state for Stats.
func ejectionOf(s *Server, now int64) (ejected bool, reason string, out time.Duration, ejections uint64) {
	st := &s.state
	ejections = st.ejections.Load()
	r := st.reason.Load()
	if !st.ejected.Load() || r == nil {
		return false, "", 0, ejections
	}
	return true, *r, time.Duration(now - st.since.Load()), ejections
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
		func(s *Server) bool { return !s.state.down.Load() && !s.state.ejected.Load() },
		func(s *Server) bool { return !s.state.down.Load() },
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
