package udpproxy_test

// Helpers shared by the package's tests: a cluster or a proxy on 127.0.0.1:0,
// clients, raw datagrams, and servers that misbehave on purpose.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startCluster(t *testing.T, cfg discaltest.Config) *discaltest.Cluster {
	t.Helper()
	cfg.Server.Quiet = true
	if cfg.Logger == nil {
		cfg.Logger = discaltest.Quiet()
	}
	c, err := discaltest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("cluster shutdown: %v", err)
		}
	})
	// Ready when every server has answered a poll and is in rotation: on
	// a loaded machine, under -race, servers slow to answer their first
	// polls were taken out of rotation, and TestErrorsThroughProxy got "no
	// server available" (1 run in 150).
	eventually.True(t, 10*time.Second, "a report from every server, all in rotation", func() bool {
		for _, b := range c.Proxy.Stats().Servers {
			if !b.HasReport || !b.InRotation {
				return false
			}
		}
		return true
	})
	return c
}

func dialClient(t *testing.T, addr net.Addr, cfg udpclient.Config) *udpclient.Client {
	t.Helper()
	c, err := udpclient.Dial(addr.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// randomRequest draws operands of both kinds, small and huge, so that the
// answers include exact integers, floats, overflow and division by zero.
func randomRequest(r *rand.Rand) codec.Request {
	num := func() codec.Number {
		switch r.IntN(6) {
		case 0:
			return codec.FloatNumber((r.Float64() - 0.5) * 1e6)
		case 1:
			return codec.IntNumber(r.Int64() - math.MaxInt64/2)
		case 2:
			return codec.IntNumber(int64(r.IntN(3)))
		default:
			return codec.IntNumber(r.Int64N(2001) - 1000)
		}
	}
	return codec.Request{Op: codec.Ops[r.IntN(len(codec.Ops))], A: num(), B: num()}
}

// checkAnswer compares a reply with the answer computed locally.
func checkAnswer(req codec.Request, r codec.Reply, err error) error {
	want, wantErr := arith.Eval(req.Op, req.A, req.B)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			return fmt.Errorf("%v: got %v, %v; want error %v", req, r.Result, err, wantErr)
		}
		return nil
	}
	if err != nil || !r.Result.Equal(want) {
		return fmt.Errorf("%v: got %#v, %v; want %#v", req, r.Result, err, want)
	}
	return nil
}

func raw(t *testing.T, id uint64, body any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return append(codec.AppendHeader(nil, codec.KindRequest, id), b...)
}

// exchange sends one datagram from a fresh socket and returns the answer.
func exchange(t *testing.T, addr *net.UDPAddr, pkt []byte) []byte {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %q: %v", pkt, err)
	}
	return buf[:n]
}

func backendByName(p *udpproxy.Proxy, name string) udpproxy.ServerStats {
	for _, b := range p.Stats().Servers {
		if b.Name == name {
			return b
		}
	}
	return udpproxy.ServerStats{}
}

// blackHole is a server that answers status polls but never computes: a
// stand-in for a server whose calculator hangs.
func blackHole(t *testing.T) udpproxy.ServerAddr {
	t.Helper()
	return startHalfDead(t, "hole").addr
}

// halfDead is a server whose status port always answers, reporting itself
// idle, while its calculator port answers only when alive is set: a
// calculator that hangs, or a link that lost one port.
type halfDead struct {
	addr  udpproxy.ServerAddr
	alive atomic.Bool
	seen  atomic.Int64 // requests that reached the calculator port
}

func startHalfDead(t *testing.T, name string) *halfDead {
	t.Helper()
	h := &halfDead{}
	f := discaltest.StartFake(t, discaltest.FakeConfig{Name: name, Answer: func(req discaltest.Request) (codec.Reply, bool) {
		h.seen.Add(1)
		return discaltest.Compute(name, req), h.alive.Load()
	}})
	h.addr = f.ServerAddr()
	return h
}
