package udpproxy_test

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpproxy"
)

// countingStatus answers status queries on a real socket, each with the
// number of queries answered so far as Served, and counts them.
type countingStatus struct {
	conn, calc *net.UDPConn
	answered   atomic.Uint64
}

func startCountingStatus(t *testing.T) *countingStatus {
	t.Helper()
	c := &countingStatus{conn: listenUDP(t), calc: listenUDP(t)}
	go func() {
		buf := make([]byte, codec.MaxDatagram)
		var out []byte
		for {
			n, from, err := c.conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			h, err := codec.ParseHeader(buf[:n])
			if err != nil || h.Kind != codec.KindStatusQuery {
				continue
			}
			st := codec.Status{Server: "counted", Cores: 2, HostCores: 2,
				CalcPort: uint16(c.calc.LocalAddr().(*net.UDPAddr).Port), Served: c.answered.Add(1)}
			out = codec.AppendStatus(out[:0], h.ID, st)
			_, _ = c.conn.WriteToUDPAddrPort(out, from)
		}
	}()
	return c
}

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestIdlePolling: a proxy that gets no requests, which reads its polls'
// answers only when the next polls are due, still polls each server about
// once an interval, neither twice nor less, reads every answer (the
// report it keeps follows the server's count) and counts none as missed
// (the server stays up).
func TestIdlePolling(t *testing.T) {
	const poll = 20 * time.Millisecond
	st := startCountingStatus(t)
	p := serveProxy(t, udpproxy.Config{Poll: poll, Servers: []udpproxy.ServerAddr{
		{Calc: st.calc.LocalAddr().String(), Status: st.conn.LocalAddr().String()}}})
	server := func() udpproxy.ServerStats { return p.Stats().Servers[0] }
	eventually.True(t, 5*time.Second, "the first report", func() bool { return server().HasReport })

	start, from := time.Now(), st.answered.Load()
	const polls = 25
	eventually.True(t, 10*time.Second, "25 more polls", func() bool {
		if s := server(); !s.Up {
			t.Fatalf("the server went down after %d answered polls: the proxy counted answers as missed", st.answered.Load())
		}
		return st.answered.Load() >= from+polls
	})
	elapsed := time.Since(start)
	// Jittered ±25% around the interval, from when each was due: 25 polls
	// take about 25 intervals. Twice as many would be a poll per timeout.
	if most := int(elapsed/poll)*5/4 + 2; polls > most {
		t.Errorf("%d polls in %v, want at most %d at one per %v", polls, elapsed, most, poll)
	}
	want := st.answered.Load() - 1
	eventually.True(t, 5*time.Second, "the proxy to read the answers", func() bool {
		return server().Report.Served >= want && server().Up
	})
}
