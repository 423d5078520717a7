package udpproxy_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// TestSystemRandomOps runs three servers, the proxy and 8 concurrent
// clients doing 10,000 random operations: every answer must equal the one
// computed locally, and every server must have served at least 15%.
func TestSystemRandomOps(t *testing.T) {
	exclusive.CPU(t)
	c := startCluster(t, discaltest.Config{Servers: 3})
	const clients, total = 8, 10000
	var mu sync.Mutex
	perServer := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		cl := dialClient(t, c.ProxyAddr, udpclient.Config{Timeout: time.Second, Retries: 3})
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 99))
			local := map[string]int{}
			for range total / clients {
				req := randomRequest(r)
				rep, err := cl.Do(context.Background(), req)
				if err := checkAnswer(req, rep, err); err != nil {
					errs <- err
					return
				}
				local[rep.Server]++
			}
			mu.Lock()
			for k, v := range local {
				perServer[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sum := 0
	for _, s := range c.Servers {
		n := perServer[s.Name]
		sum += n
		if n < total*15/100 {
			t.Errorf("server %s served %d of %d (%.1f%%), want at least 15%%", s.Name, n, total, 100*float64(n)/total)
		}
	}
	if sum != total {
		t.Errorf("replies named servers %v, summing to %d of %d", perServer, sum, total)
	}
	if st := c.Proxy.Stats(); st.Pending != 0 || st.Replies < total {
		t.Errorf("after the run: pending %d, replies %d", st.Pending, st.Replies)
	}
	t.Logf("per server: %v", perServer)
}

// TestErrorsThroughProxy checks that every error case comes back through the
// proxy as an explicit error reply, with the client's own ID.
func TestErrorsThroughProxy(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 2})
	I, F := codec.IntNumber, codec.FloatNumber
	req := func(op codec.Op, a, b codec.Number) []byte {
		return codec.AppendRequest(nil, 0, codec.Request{Op: op, A: a, B: b})
	}
	tests := []struct {
		name string
		pkt  []byte
		code codec.Code
	}{
		{"division by zero", req(codec.OpDiv, I(1), I(0)), codec.CodeDivByZero},
		{"float division by zero", req(codec.OpDiv, F(1), F(0)), codec.CodeDivByZero},
		{"overflow", req(codec.OpMul, I(math.MaxInt64), I(2)), codec.CodeOverflow},
		{"NaN operand", req(codec.OpAdd, F(math.NaN()), I(1)), codec.CodeNaN},
		{"infinite operand", req(codec.OpAdd, F(math.Inf(-1)), I(1)), codec.CodeInfinite},
		{"infinite result", req(codec.OpMul, F(1e300), F(-1e300)), codec.CodeNotFinite},
		{"unknown operation", raw(t, 0, map[string]any{"op": "mod", "a": 1, "b": 2}), codec.CodeUnknownOp},
		{"missing field", raw(t, 0, map[string]any{"op": "add", "b": 2}), codec.CodeMissingField},
		{"wrong type", raw(t, 0, map[string]any{"op": "add", "a": []int{1}, "b": 2}), codec.CodeWrongType},
		{"malformed body", raw(t, 0, "not a map"), codec.CodeMalformed},
		{"too large", append(req(codec.OpAdd, I(1), I(1)), make([]byte, codec.MaxDatagram)...), codec.CodeTooLarge},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint64(0xC0FFEE00 + i)
			codec.SetID(tt.pkt, id)
			got := exchange(t, c.ProxyAddr, tt.pkt)
			h, err := codec.ParseHeader(got)
			if err != nil || h.Kind != codec.KindReply || h.ID != id {
				t.Fatalf("reply header %+v, %v; want a reply to ID %x", h, err, id)
			}
			r, err := codec.DecodeReply(got[codec.HeaderSize:])
			if err != nil || r.Err == nil || r.Err.Code != tt.code {
				t.Fatalf("reply %+v (%v), %v; want code %d", r, r.Err, err, tt.code)
			}
		})
	}

	text := []struct{ in, want string }{
		{"6 * 7\n", "42\n"},
		{"7 / 2", "3.5\n"},
		{"add 2 3\n", "5\n"},
		{"1 / 0\n", "error: division by zero\n"},
		{"9223372036854775807 * 2", "error: integer overflow\n"},
		{"inf - 1", "error: operand is infinite\n"},
		{"six * seven", "error: syntax error: \"six\" is not a number\n"},
		{"hello", "error: syntax error: \"hello\" is not a number\n"},
		{"1 2 + 3", "error: syntax error: want NUMBER OP NUMBER or OP NUMBER NUMBER\n"},
	}
	for _, tt := range text {
		if got := string(exchange(t, c.ProxyAddr, []byte(tt.in))); got != tt.want {
			t.Errorf("text %q answered %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLongServerName: a name longer than the codec's interning buffer still
// comes through in replies and status reports.
func TestLongServerName(t *testing.T) {
	name := "calculator-number-one.example.internal"
	c := startCluster(t, discaltest.Config{Servers: 1, Server: udpserver.Config{Name: name}})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{})
	r, err := cl.Do(context.Background(), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(1)})
	if err != nil || r.Server != name {
		t.Fatalf("reply %+v, %v", r, err)
	}
	eventually.True(t, 5*time.Second, "a report naming the server", func() bool {
		b := backendByName(c.Proxy, name)
		return b.HasReport && b.Up
	})
}

func TestStatsCommand(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 2})
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{})
	for range 10 {
		if _, err := cl.Calc(context.Background(), codec.OpAdd, codec.IntNumber(1), codec.IntNumber(2)); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 5*time.Second, "reports", func() bool {
		return backendByName(c.Proxy, "s1").HasReport && backendByName(c.Proxy, "s2").HasReport
	})
	out := string(exchange(t, c.ProxyAddr, []byte("stats\n")))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "proxy policy=least-load ") || !strings.Contains(lines[0], " requests=10 ") {
		t.Fatalf("stats:\n%s", out)
	}
	for i, l := range lines[1:] {
		name := fmt.Sprintf("s%d ", i+1)
		if !strings.HasPrefix(l, name) || !strings.Contains(l, " up host_cpu=") || !strings.Contains(l, " in_flight=0 ") || !strings.Contains(l, " age=") {
			t.Errorf("server line %q", l)
		}
	}
}

// TestUpstreamAddr: with UpstreamAddr set, what the proxy sends the
// servers (polls here) comes from that address, as a multi-homed host's
// servers expect in their -allow lists.
func TestUpstreamAddr(t *testing.T) {
	status, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer status.Close()
	discaltest.StartProxy(t, udpproxy.Config{
		Servers:      []udpproxy.ServerAddr{{Calc: "127.0.0.1:9", Status: status.LocalAddr().String()}},
		UpstreamAddr: netip.MustParseAddr("127.0.0.2"),
	})
	_ = status.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	_, from, err := status.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no poll arrived: %v", err)
	}
	if ip := from.(*net.UDPAddr).IP.String(); ip != "127.0.0.2" {
		t.Fatalf("the poll came from %s, want 127.0.0.2", ip)
	}
}
