// Package eventually is how discal's tests wait for a state the system
// reaches by itself: a server in rotation, a count that climbs, a process
// that answers. It polls a condition until it holds or a limit passes,
// and fails the test with what it waited for. Tests never sleep to let
// time pass; they wait for what they need, bounded.
package eventually

import (
	"testing"
	"time"
)

// Every is how often a condition is asked again: often enough that a wait
// ends within a few milliseconds of the state, rarely enough to cost the
// system under test nothing.
const Every = 5 * time.Millisecond

// True polls cond until it holds, and fails t with "timed out waiting for
// what" if limit passes first.
func True(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(limit, cond) {
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// Within polls cond until it holds or limit passes, and reports which: for
// a caller that says more than True can when the time is up.
func Within(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Every)
	}
	return true
}
