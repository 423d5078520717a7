package udpproxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/faultnet"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// TestHedgeAnswersFirst: of two servers, s2 answers every request a second
// late (a relay holds its replies back), the way a server stalled by a GC
// pause or a noisy neighbour does, while its status port answers on. Each
// request the proxy sends to s2 is hedged to s1 within the hedge ceiling,
// and s1's answer is the one the client gets: every answer is right and
// comes from s1, though s2 was given requests first; s2's late answers
// are dropped as unknown.
func TestHedgeAnswersFirst(t *testing.T) {
	_, calc1, status1 := discaltest.StartServer(t, udpserver.Config{Name: "s1"})
	_, calc2, status2 := discaltest.StartServer(t, udpserver.Config{Name: "s2"})
	slow, err := faultnet.Start(faultnet.Config{Target: calc2.String(), Backward: faultnet.Faults{Delay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	p, addr := discaltest.StartProxy(t, udpproxy.Config{Servers: []udpproxy.ServerAddr{
		{Calc: calc1.String(), Status: status1.String()},
		{Calc: slow.Addr().String(), Status: status2.String()},
	}, Poll: 20 * time.Millisecond, TryTimeout: 3 * time.Second, HedgeBudget: 100})
	eventually.True(t, 5*time.Second, "both servers in rotation", func() bool {
		st := p.Stats()
		return len(st.Servers) == 2 && st.Servers[0].InRotation && st.Servers[1].InRotation
	})
	c := dialClient(t, addr, udpclient.Config{Timeout: 5 * time.Second, Retries: 1})
	const n = 30
	for i := range n {
		r, err := c.Do(context.Background(), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(int64(i)), B: codec.IntNumber(1)})
		if err != nil || r.Result != codec.IntNumber(int64(i)+1) {
			t.Fatalf("request %d: %+v, %v", i, r, err)
		}
		if r.Server != "s1" {
			t.Fatalf("request %d was answered by %s, a second late, though hedged", i, r.Server)
		}
	}
	st := p.Stats()
	var slowStats udpproxy.ServerStats
	for _, s := range st.Servers {
		if s.Addr.Calc == slow.Addr().String() {
			slowStats = s
		}
	}
	t.Logf("hedges %d, won %d; the slow server was sent %d, answered %d", st.Hedges, st.HedgeWins, slowStats.Sent, slowStats.Answered)
	if slowStats.Sent == 0 {
		t.Fatal("no request went to the slow server: nothing was there to hedge")
	}
	if slowStats.Answered != 0 || st.HedgeWins == 0 || st.Hedges < st.HedgeWins {
		t.Fatalf("the slow server's answers were relayed %d times; %d hedges sent, %d won", slowStats.Answered, st.Hedges, st.HedgeWins)
	}
	if st.Timeouts != 0 || st.Retries != 0 {
		t.Fatalf("%d timeouts, %d retries: the hedges should have answered first", st.Timeouts, st.Retries)
	}
}
