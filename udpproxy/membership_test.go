package udpproxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
	"github.com/miekg/dns"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// serveProxy is startProxy for tests that ask the proxy its address.
func serveProxy(t *testing.T, cfg udpproxy.Config) *udpproxy.Proxy {
	t.Helper()
	p, _ := discaltest.StartProxy(t, cfg)
	eventually.True(t, 5*time.Second, "the proxy to serve", func() bool { return p.Addr() != nil })
	return p
}

// testServer is a real udpserver that a test can stop before it ends.
type testServer struct {
	*udpserver.Server
	calc, status *net.UDPAddr
	done         chan error
}

func (s *testServer) stop(t *testing.T) {
	t.Helper()
	if s.done == nil {
		return
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := <-s.done; !errors.Is(err, udpserver.ErrServerClosed) {
		t.Error(err)
	}
	s.done = nil
}

// serveServer runs a server on the given sockets (or 127.0.0.1:0) until
// the test ends or it is stopped.
func serveServer(t *testing.T, cfg udpserver.Config, calc, status net.PacketConn) *testServer {
	t.Helper()
	cfg.Quiet = true
	cfg.Logger = discaltest.Quiet()
	var err error
	if calc == nil {
		if calc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if status, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := udpserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{Server: srv, calc: calc.LocalAddr().(*net.UDPAddr), status: status.LocalAddr().(*net.UDPAddr), done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(calc, status) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// upServers returns the names of the servers in rotation, sorted, and
// the sources they came from.
func upServers(p *udpproxy.Proxy) (names, sources []string) {
	for _, b := range p.Stats().Servers {
		if b.Up && b.HasReport {
			names = append(names, b.Name)
			sources = append(sources, b.Source)
		}
	}
	slices.Sort(names)
	return names, sources
}

// servedBy sends n requests and returns who answered them.
func servedBy(t *testing.T, p *udpproxy.Proxy, n int) map[string]int {
	t.Helper()
	c := dialClient(t, p.Addr(), udpclient.Config{Timeout: time.Second})
	by := map[string]int{}
	for i := range n {
		r, err := c.Do(context.Background(), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(int64(i)), B: codec.IntNumber(1)})
		if err != nil || !r.Result.Equal(codec.IntNumber(int64(i+1))) {
			t.Fatalf("request %d: %+v, %v", i, r, err)
		}
		by[r.Server]++
	}
	return by
}

// TestJoinAddsServerAndMissedPollsRemoveIt: a server started with Join is
// added by a proxy that starts with no servers at all, serves its requests,
// is removed after missed polls once it stops, and joins again when it
// comes back, on new ports.
func TestJoinAddsServerAndMissedPollsRemoveIt(t *testing.T) {
	p := serveProxy(t, udpproxy.Config{JoinAllow: loopback, Poll: 20 * time.Millisecond})
	if n := len(p.Stats().Servers); n != 0 {
		t.Fatalf("a proxy with joins and no servers starts with %d", n)
	}
	join := udpserver.Config{Name: "j1", Join: []string{p.Addr().String()}, JoinInterval: 20 * time.Millisecond}
	s := serveServer(t, join, nil, nil)
	eventually.True(t, 5*time.Second, "the server to join", func() bool {
		names, sources := upServers(p)
		return slices.Equal(names, []string{"j1"}) && sources[0] == "join"
	})
	eventually.True(t, 5*time.Second, "the join to be acknowledged", func() bool { return s.Joined()[p.Addr().String()] })
	if by := servedBy(t, p, 20); by["j1"] != 20 {
		t.Fatalf("served by %v", by)
	}
	if st := p.Stats(); st.Joins == 0 || st.Servers[0].Addr.Calc != s.calc.String() || st.Servers[0].Addr.Status != s.status.String() {
		t.Fatalf("joins %d, backends %+v; want the server's own addresses", st.Joins, st.Servers)
	}

	s.stop(t)
	eventually.True(t, 5*time.Second, "the stopped server to be removed", func() bool { return len(p.Stats().Servers) == 0 })

	again := serveServer(t, join, nil, nil)
	eventually.True(t, 5*time.Second, "the restarted server to join again", func() bool {
		bs := p.Stats().Servers
		return len(bs) == 1 && bs[0].Up && bs[0].Addr.Calc == again.calc.String()
	})
	if by := servedBy(t, p, 10); by["j1"] != 10 {
		t.Fatalf("served by %v", by)
	}
}

// TestJoinRefusedOutsideAllow: joins from outside JoinAllow are dropped
// and counted, never acknowledged, and add nothing.
func TestJoinRefusedOutsideAllow(t *testing.T) {
	p := serveProxy(t, udpproxy.Config{JoinAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Poll: 20 * time.Millisecond})
	s := serveServer(t, udpserver.Config{Join: []string{p.Addr().String()}, JoinInterval: 10 * time.Millisecond}, nil, nil)
	eventually.True(t, 5*time.Second, "three joins refused", func() bool { return p.Stats().Drops["join_refused"] >= 3 })
	if st := p.Stats(); len(st.Servers) != 0 || st.Joins != 0 {
		t.Fatalf("a refused join added %d servers, %d joins counted", len(st.Servers), st.Joins)
	}
	if s.Joined()[p.Addr().String()] {
		t.Fatal("the server thinks it joined")
	}
}

// rawJoin sends a join from conn and reports whether it was acknowledged.
func rawJoin(t *testing.T, conn *net.UDPConn, proxy net.Addr, id uint64, calcPort uint16) bool {
	t.Helper()
	if _, err := conn.WriteTo(codec.AppendJoin(nil, id, codec.Join{CalcPort: calcPort}), proxy); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, codec.MaxDatagram)
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return false
		}
		if h, err := codec.ParseHeader(buf[:n]); err == nil && h.Kind == codec.KindJoinAck {
			if h.ID != id || n != codec.HeaderSize {
				t.Fatalf("ack %x for join %d", buf[:n], id)
			}
			return true
		}
	}
}

// TestJoinedServerWorksOnlyOnceItAnswers: a join that nothing stands
// behind (spoofed, or a server whose status port is dead) adds a backend
// that gets no work, and is gone after missed polls; the server list is
// bounded, and joins beyond it are refused.
func TestJoinedServerWorksOnlyOnceItAnswers(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 1, Proxy: udpproxy.Config{
		// Polls far enough apart that the joiners outlive the joins below
		// (three missed polls take at least 500 ms).
		JoinAllow: loopback, MaxServers: 3, Poll: 200 * time.Millisecond}})
	var socks []*net.UDPConn
	for range 3 {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		socks = append(socks, conn)
	}
	// Two fit beside the configured server; the third does not.
	for i, conn := range socks[:2] {
		if !rawJoin(t, conn, c.ProxyAddr, uint64(100+i), uint16(9+i)) {
			t.Fatalf("join %d not acknowledged", i)
		}
	}
	if by := servedBy(t, c.Proxy, 50); by["s1"] != 50 {
		t.Fatalf("served by %v: work went to a server that never answered a poll", by)
	}
	if st := c.Proxy.Stats(); len(st.Servers) != 3 {
		t.Fatalf("%d servers after two joins, want 3", len(st.Servers))
	}
	if rawJoin(t, socks[2], c.ProxyAddr, 102, 11) {
		t.Fatal("a join beyond MaxServers was acknowledged")
	}
	if n := c.Proxy.Stats().Drops["join_refused"]; n != 1 {
		t.Fatalf("%d joins refused, want 1", n)
	}
	eventually.True(t, 5*time.Second, "the silent joiners to be removed", func() bool { return len(c.Proxy.Stats().Servers) == 1 })
	if st := c.Proxy.Stats(); st.Timeouts != 0 || st.Retries != 0 {
		t.Fatalf("%d timeouts, %d retries", st.Timeouts, st.Retries)
	}
}

// zone is a DNS server on loopback that answers for one SRV name from a
// record set the test changes.
type zone struct {
	mu      sync.Mutex
	name    string
	servers []*testServer
	rcode   int                       // answer this instead, when not success
	queries atomic.Int64              // SRV queries answered
	rank    map[*testServer][2]uint16 // a server's priority and weight; default 10, 10
	addr    string
}

func startZone(t *testing.T, name string) *zone {
	z := &zone{name: name}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Error(err)
		}
		<-done
	})
	return z
}

func (z *zone) set(rcode int, servers ...*testServer) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.rcode, z.servers = rcode, servers
}

// ServeDNS answers SRV for the zone's name with one record per server,
// each on its own target host name, and A and AAAA queries for those names
// with 127.0.0.1 and ::1.
func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	switch {
	case q.Qtype == dns.TypeSRV && q.Name == z.name:
		z.queries.Add(1)
		if z.rcode != dns.RcodeSuccess {
			m.Rcode = z.rcode
			break
		}
		if len(z.servers) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		for i, s := range z.servers {
			rank, ok := z.rank[s]
			if !ok {
				rank = [2]uint16{10, 10}
			}
			m.Answer = append(m.Answer, &dns.SRV{
				Hdr:    dns.RR_Header{Name: z.name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1},
				Target: fmt.Sprintf("host%d.discal.test.", i), Port: uint16(s.calc.Port), Priority: rank[0], Weight: rank[1],
			})
		}
	case q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
			A:   net.IPv4(127, 0, 0, 1),
		})
	case q.Qtype == dns.TypeAAAA:
		// Dual stack: the hosts have ::1 too, where no server listens. A
		// target is one server, at its IPv4 address.
		m.Answer = append(m.Answer, &dns.AAAA{
			Hdr:  dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 1},
			AAAA: net.IPv6loopback,
		})
	}
	_ = w.WriteMsg(m)
}

// listenPair binds a calculator socket on a free port and a status socket
// on that port plus offset, the convention SRV discovery relies on.
func listenPair(t *testing.T, offset int) (calc, status net.PacketConn) {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port + offset
		if port > 65535 {
			c.Close()
			continue
		}
		s, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return c, s
		}
		c.Close()
	}
	t.Fatal("no free pair of ports")
	return nil, nil
}

// TestSRVDiscovery: a proxy that finds its servers through DNS SRV, served
// by a real DNS server on loopback, follows the records as they change;
// a failing lookup changes nothing, a name that is gone removes them all.
func TestSRVDiscovery(t *testing.T) {
	const name = "_calc._udp.discal.test."
	z := startZone(t, name)
	var servers []*testServer
	for i := range 3 {
		calc, status := listenPair(t, 100)
		servers = append(servers, serveServer(t, udpserver.Config{Name: fmt.Sprintf("d%d", i+1)}, calc, status))
	}
	z.set(dns.RcodeSuccess, servers[0], servers[1])
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", z.addr)
	}}
	p := serveProxy(t, udpproxy.Config{SRV: name, SRVInterval: 100 * time.Millisecond, Resolver: resolver, Poll: 20 * time.Millisecond})
	want := func(names ...string) func() bool {
		return func() bool {
			got, sources := upServers(p)
			return slices.Equal(got, names) && !slices.ContainsFunc(sources, func(s string) bool { return s != "srv" }) &&
				len(p.Stats().Servers) == len(names)
		}
	}
	eventually.True(t, 5*time.Second, "d1 and d2 from DNS", want("d1", "d2"))
	if by := servedBy(t, p, 40); by["d1"]+by["d2"] != 40 {
		t.Fatalf("served by %v", by)
	}

	z.set(dns.RcodeSuccess, servers[1], servers[2])
	eventually.True(t, 5*time.Second, "d2 and d3 after the records changed", want("d2", "d3"))
	if by := servedBy(t, p, 40); by["d2"]+by["d3"] != 40 {
		t.Fatalf("served by %v", by)
	}

	// A failing DNS server: the proxy keeps what it has.
	z.set(dns.RcodeServerFailure, servers[0])
	asked := z.queries.Load()
	eventually.True(t, 5*time.Second, "failed lookups (a few queries each)", func() bool { return z.queries.Load() >= asked+6 })
	if !want("d2", "d3")() {
		names, _ := upServers(p)
		t.Fatalf("a failed lookup changed the servers to %v", names)
	}

	// The name is gone: so are the servers.
	z.set(dns.RcodeSuccess)
	eventually.True(t, 5*time.Second, "no servers once the name is gone", want())
	c := dialClient(t, p.Addr(), udpclient.Config{Timeout: time.Second})
	if _, err := c.Do(context.Background(), codec.Request{Op: codec.OpAdd}); !errors.Is(err, codec.ErrNoServer) {
		t.Fatalf("with no servers: %v, want %v", err, codec.ErrNoServer)
	}
}

// TestSRVPriority: of servers listed with priorities 10, 20 and 20, the
// one at 10 takes all the work while it is in rotation (RFC 2782); when it
// stops, the two at 20 take it, and when it is back, it takes it all again.
func TestSRVPriority(t *testing.T) {
	const name = "_calc._udp.discal.test."
	z := startZone(t, name)
	var servers []*testServer
	for i := range 3 {
		calc, status := listenPair(t, 100)
		servers = append(servers, serveServer(t, udpserver.Config{Name: fmt.Sprintf("d%d", i+1)}, calc, status))
	}
	z.mu.Lock()
	z.rank = map[*testServer][2]uint16{servers[0]: {10, 10}, servers[1]: {20, 10}, servers[2]: {20, 10}}
	z.mu.Unlock()
	z.set(dns.RcodeSuccess, servers...)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", z.addr)
	}}
	p := serveProxy(t, udpproxy.Config{SRV: name, SRVInterval: 100 * time.Millisecond, Resolver: resolver, Poll: 20 * time.Millisecond})
	eventually.True(t, 5*time.Second, "all three from DNS", func() bool { names, _ := upServers(p); return len(names) == 3 })
	if by := servedBy(t, p, 40); by["d1"] != 40 {
		t.Fatalf("with the priority-10 server up, served by %v; want d1 alone", by)
	}
	servers[0].stop(t)
	eventually.True(t, 5*time.Second, "d1 out of rotation", func() bool { return !backendByName(p, "d1").Up })
	if by := servedBy(t, p, 40); by["d2"]+by["d3"] != 40 || by["d2"] == 0 || by["d3"] == 0 {
		t.Fatalf("with d1 down, served by %v; want d2 and d3 both", by)
	}
}

// TestSRVRetriesSoonAfterFailure: a proxy whose DNS fails at start looks
// again within seconds, not at its next interval (a minute here).
func TestSRVRetriesSoonAfterFailure(t *testing.T) {
	const name = "_calc._udp.discal.test."
	z := startZone(t, name)
	calc, status := listenPair(t, 100)
	s := serveServer(t, udpserver.Config{Name: "late"}, calc, status)
	z.set(dns.RcodeServerFailure, s)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", z.addr)
	}}
	p := serveProxy(t, udpproxy.Config{SRV: name, SRVInterval: time.Minute, Resolver: resolver, Poll: 20 * time.Millisecond})
	eventually.True(t, 5*time.Second, "a failed lookup", func() bool { return z.queries.Load() > 0 })
	z.set(dns.RcodeSuccess, s)
	eventually.True(t, 5*time.Second, "the server, once DNS works", func() bool {
		names, _ := upServers(p)
		return slices.Equal(names, []string{"late"})
	})
}
