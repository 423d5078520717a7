package udpproxy_test

import (
	"testing"
	"time"

	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpproxy"
)

// TestIdlePolling: a proxy that gets no requests, which reads its polls'
// answers only when the next polls are due, still polls each server about
// once an interval, neither twice as often nor half, counts none of the answers as
// missed (the server stays up), and keeps its report fresh: its age comes
// back under an interval after each read.
func TestIdlePolling(t *testing.T) {
	const poll = 40 * time.Millisecond
	f := discaltest.StartFake(t, discaltest.FakeConfig{Name: "counted"})
	p := serveProxy(t, udpproxy.Config{Poll: poll, Servers: []udpproxy.ServerAddr{f.ServerAddr()}})
	server := func() udpproxy.ServerStats { return p.Stats().Servers[0] }
	eventually.True(t, 5*time.Second, "the first report", func() bool { return server().HasReport })

	start, from := time.Now(), f.StatusAnswers()
	const polls = 20
	eventually.True(t, 10*time.Second, "20 more polls", func() bool {
		if s := server(); !s.Up {
			t.Fatalf("the server went down after %d answered polls: the proxy counted answers as missed", f.StatusAnswers())
		}
		return f.StatusAnswers() >= from+polls
	})
	elapsed := time.Since(start)
	// Jittered ±25% around the interval, from when each was due: 20 polls
	// take about 20 intervals. Twice as many would be a poll per timeout;
	// half as many, a poller that sleeps through the polls due.
	if most := int(elapsed/poll)*5/4 + 2; polls > most {
		t.Errorf("%d polls in %v, want at most %d at one per %v", polls, elapsed, most, poll)
	}
	if longest := 2 * (polls + 1) * poll; elapsed > longest {
		t.Errorf("%d polls took %v, want at most %v at one per %v", polls, elapsed, longest, poll)
	}
	eventually.True(t, 5*time.Second, "a report younger than an interval", func() bool {
		s := server()
		return s.Up && s.ReportAge < poll
	})
	if p.Stats().Requests != 0 {
		t.Fatal("the proxy was not idle")
	}
}
