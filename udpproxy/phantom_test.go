package udpproxy_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// TestPhantomJoinGainsNothing: a host that may join announces itself from
// a status port of its own, naming s1's calculator port, and answers every
// poll that it is idle with 64 cores. Listed as a second entry for s1, its
// report would govern the work sent there (in the attack review s1 then
// computed 82% of all requests). One calculator address is one server: the
// join is refused, and under a flood s1 gets its fair share, about half.
func TestPhantomJoinGainsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a proxy and judges the balance: skipped under -short")
	}
	exclusive.CPU(t)
	_, calc1, status1 := discaltest.StartServer(t, udpserver.Config{Name: "s1"})
	_, calc2, status2 := discaltest.StartServer(t, udpserver.Config{Name: "s2"})
	p, addr := discaltest.StartProxy(t, udpproxy.Config{Servers: []udpproxy.ServerAddr{
		{Calc: calc1.String(), Status: status1.String()}, {Calc: calc2.String(), Status: status2.String()},
	}, JoinAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	phantom, err := net.ListenUDP("udp", &net.UDPAddr{IP: calc1.IP})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phantom.Close() })
	go answerPollsIdle(phantom, uint16(calc1.Port))
	join := codec.AppendJoin(nil, 1, codec.Join{CalcPort: uint16(calc1.Port), Name: "phantom"})
	for range 3 { // a real server joins once a second; a few are enough
		if _, err := phantom.WriteToUDP(join, addr); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 5*time.Second, "the joins to be handled", func() bool {
		st := p.Stats()
		return st.Joins+st.Drops["join_refused"] == 3
	})
	// Had the proxy listed the phantom, it would take work once polled.
	eventually.True(t, 5*time.Second, "every server listed to be in rotation", func() bool {
		for _, s := range p.Stats().Servers {
			if !s.InRotation {
				return false
			}
		}
		return true
	})
	res, err := flood.Run(context.Background(), flood.Config{Targets: []string{addr.String()}, InFlight: 16, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	share := float64(res.PerServer["s1"]) / float64(res.OK)
	t.Logf("servers listed %d; answers %v; s1's share %.1f%%", len(st.Servers), res.PerServer, 100*share)
	// Fair is a half; the margin is the balance's noise on a busy machine.
	if share > 0.65 {
		t.Fatalf("s1 computed %.1f%% of the requests, more than its fair share of two", 100*share)
	}
	if len(st.Servers) != 2 {
		t.Fatalf("%d servers listed after the phantom's joins, want the 2 configured", len(st.Servers))
	}
	if res.Wrong != 0 || res.OK == 0 {
		t.Fatalf("%d right answers, %d wrong", res.OK, res.Wrong)
	}
}

// answerPollsIdle answers every status query on c with a report of an
// idle server of 64 cores whose calculator port is calcPort, until c is
// closed.
func answerPollsIdle(c *net.UDPConn, calcPort uint16) {
	buf := make([]byte, codec.MaxDatagram+1)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		h, err := codec.ParseHeader(buf[:n])
		if err != nil || h.Kind != codec.KindStatusQuery {
			continue
		}
		st := codec.Status{Server: "phantom", Cores: 64, HostCores: 64, CalcPort: calcPort}
		_, _ = c.WriteToUDPAddrPort(codec.AppendStatus(nil, h.ID, st), from)
	}
}
