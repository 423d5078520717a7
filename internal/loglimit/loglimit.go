// Package loglimit keeps a log line that a flood or a socket in a bad state
// could repeat to once a second at most: the first occurrence is logged,
// the rest of that second is not. It costs one atomic load when it says no,
// so it can sit on a hot path.
package loglimit

import (
	"sync/atomic"
	"time"
)

// Interval is the least time between two lines a Limit lets through.
const Interval = time.Second

// Limit lets one line through per Interval. The zero Limit lets the first
// through at once. It is safe for concurrent use; give each kind of message
// its own, so that one flood does not silence another warning.
type Limit struct{ last atomic.Int64 }

// Allow reports whether a line may be logged now, by the wall clock.
func (l *Limit) Allow() bool { return l.AllowAt(time.Now().UnixNano()) }

// AllowAt is Allow for a caller that has read a clock already: now is in
// nanoseconds on any clock that only goes forward (the proxy's monotonic
// nanotime, or Unix nanoseconds), the same clock at every call.
func (l *Limit) AllowAt(now int64) bool {
	last := l.last.Load()
	now = max(now, 1) // 0 means "never logged"
	return (last == 0 || now-last >= int64(Interval)) && l.last.CompareAndSwap(last, now)
}
