package udpproxy

import "testing"

// TestWakeAt: while requests come, the poller wakes for the first poll
// timeout, to read the answers while they are fresh; while none come, it
// reads them when the next polls are due, unless a server that missed a
// poll awaits an answer, whose timeout still counts.
func TestWakeAt(t *testing.T) {
	const next, timeout, lazy, urgent = 100, 40, 90, 60
	for _, tt := range []struct {
		name        string
		request     bool // a request came since the last wake-up
		outstanding int
		urgentAt    int64
		want        int64
	}{
		{"busy, answers awaited", true, 3, 0, timeout},
		{"busy, none awaited", true, 0, 0, next},
		{"idle, answers awaited", false, 3, 0, lazy},
		{"idle, a missed server's answer awaited", false, 3, urgent, urgent},
		{"idle, a missed server's timeout after the next poll", false, 3, 95, lazy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pl := &poller{counters: &counters{}}
			l := &pollLoop{next: next, outstanding: tt.outstanding, timeoutAt: timeout, lazyNext: lazy, urgentAt: tt.urgentAt}
			pl.counters.requests.Store(7)
			l.seen = 7
			if tt.request {
				pl.counters.requests.Add(1)
			}
			if got := pl.wakeAt(l); got != tt.want {
				t.Errorf("wakeAt = %d, want %d", got, tt.want)
			}
			// The next call sees no new request: the proxy is idle.
			if tt.request && tt.outstanding > 0 {
				if got := pl.wakeAt(l); got != lazy {
					t.Errorf("with no request since: wakeAt = %d, want %d", got, lazy)
				}
			}
		})
	}
}
