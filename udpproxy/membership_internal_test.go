package udpproxy

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpserver"
)

func joinProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(Config{JoinAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Poll: 20 * time.Millisecond, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func addrs(p *Proxy) []string {
	var out []string
	for _, b := range p.members.servers() {
		out = append(out, b.addr.String())
	}
	slices.Sort(out)
	return out
}

// join hands the proxy's membership a join as if it came from status, as
// its goroutine would, and returns once it is handled.
func join(p *Proxy, status string, calcPort uint16) {
	pkt := codec.AppendJoin(nil, 1, codec.Join{CalcPort: calcPort})
	p.members.join(joinOffer{from: netip.MustParseAddrPort(status), id: 1, pkt: pkt})
}

// TestVerify: a joined server whose status port reports another calculator
// port than its join claimed is removed; one that matches replaces the
// joined servers that shared its status port, and no one else. A join that
// names a calculator address already listed, from another status port, is
// refused: one calculator address is one server.
func TestVerify(t *testing.T) {
	p := joinProxy(t)
	join(p, "127.0.0.1:7101", 7001) // a server
	join(p, "127.0.0.1:7102", 7002) // another
	join(p, "127.0.0.1:7101", 7009) // the first one's status port, claiming another calculator port
	join(p, "127.0.0.1:7103", 7001) // the first one's calculator port, from another status port
	if got := addrs(p); len(got) != 3 {
		t.Fatalf("joins added %v, want 3 servers: a join displaces no one, and names a calculator port once", got)
	}
	if n := p.counters.drops[dropJoinRefused].Load(); n != 1 {
		t.Fatalf("%d joins refused, want the one that named 7001 again", n)
	}
	find := func(a string) *Server {
		for _, b := range p.members.servers() {
			if b.addr.String() == a {
				return b
			}
		}
		t.Fatalf("no %s in %v", a, addrs(p))
		return nil
	}
	// The status port at 7101 answers for calculator port 7001: the
	// claim of 7009 was false.
	if p.members.verify(find("127.0.0.1:7009,127.0.0.1:7101"), codec.Status{CalcPort: 7001}, true) {
		t.Fatal("a report contradicting the join passed")
	}
	// The server at 7101 reports 7001, as it claimed: it stays, and so
	// does the one at 7102.
	if !p.members.verify(find("127.0.0.1:7001,127.0.0.1:7101"), codec.Status{CalcPort: 7001}, true) {
		t.Fatal("a report matching the join failed")
	}
	want := []string{"127.0.0.1:7001,127.0.0.1:7101", "127.0.0.1:7002,127.0.0.1:7102"}
	if got := addrs(p); !slices.Equal(got, want) {
		t.Fatalf("servers %v, want %v", got, want)
	}
	// A report without calc_port (an older server) is taken on trust.
	if !p.members.verify(find("127.0.0.1:7002,127.0.0.1:7102"), codec.Status{}, true) {
		t.Fatal("a report without calc_port failed")
	}
	// Later reports are checked too: a server restarted on another port.
	if p.members.verify(find("127.0.0.1:7002,127.0.0.1:7102"), codec.Status{CalcPort: 7005}, false) {
		t.Fatal("a changed calculator port passed")
	}
	if got := addrs(p); !slices.Equal(got, want[:1]) {
		t.Fatalf("servers %v, want %v", got, want[:1])
	}
}

// TestUnverifiedJoinsBounded: joins whose status ports have not answered
// yet are limited, so a flood of spoofed ones cannot fill the list.
func TestUnverifiedJoinsBounded(t *testing.T) {
	p := joinProxy(t)
	for i := range 100 {
		join(p, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}), 7101).String(), 7001)
	}
	if n := len(p.members.servers()); n != maxUnverified {
		t.Fatalf("%d servers after 100 unanswered joins, want %d", n, maxUnverified)
	}
	if n := p.counters.drops[dropJoinRefused].Load(); n != 100-maxUnverified {
		t.Fatalf("%d joins refused, want %d", n, 100-maxUnverified)
	}
}

// TestSpoofedJoinDisplacesNoOne: with a real server joined, a join forged
// from its status address with another calculator port adds a server that
// never takes work and is gone at its first report; the real one keeps
// serving throughout.
func TestSpoofedJoinDisplacesNoOne(t *testing.T) {
	pconn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{JoinAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Poll: 20 * time.Millisecond,
		Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(pconn) }()
	defer func() { p.Close(); <-done }()

	calc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	status, _ := net.ListenPacket("udp", "127.0.0.1:0")
	srv, err := udpserver.New(udpserver.Config{Name: "real", Quiet: true, Logger: discardLogger(),
		Join: []string{pconn.LocalAddr().String()}, JoinInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(calc, status) }()
	defer func() { srv.Close(); <-sdone }()

	up := func() bool {
		bs := p.members.servers()
		return len(bs) == 1 && bs[0].takesWork() && bs[0].polled.report.Load() != nil
	}
	eventually.True(t, 5*time.Second, "the real server to come up", up)
	real := p.members.servers()[0]
	join(p, status.LocalAddr().String(), 9) // forged: port 9 is not its calculator port
	if n := len(p.members.servers()); n != 2 {
		t.Fatalf("%d servers after the forged join, want 2", n)
	}
	eventually.True(t, 5*time.Second, "the forged server to be removed", func() bool { return len(p.members.servers()) == 1 })
	if p.members.servers()[0] != real || !real.takesWork() {
		t.Fatal("the real server did not survive the forged join")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestOneCalcAddressOneServer: however a calculator address is named
// (-server, DNS, a join), it is listed once, under the status port it was
// first listed with, whose reports count.
func TestOneCalcAddressOneServer(t *testing.T) {
	if _, err := New(Config{Servers: []ServerAddr{{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"},
		{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7201"}}}); err == nil {
		t.Fatal("two -server entries with one calculator address were taken")
	}
	p, err := New(Config{Servers: []ServerAddr{{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"}},
		JoinAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, SRV: "_calc._udp.example.", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	join(p, "127.0.0.1:9999", 7001) // a phantom: another status port for the listed calculator port
	p.members.applySRV([]srvTarget{
		{addr: ServerAddr{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7301"}},
		{addr: ServerAddr{Calc: "127.0.0.1:7002", Status: "127.0.0.1:7102"}},
	})
	want := []string{"127.0.0.1:7001,127.0.0.1:7101", "127.0.0.1:7002,127.0.0.1:7102"}
	if got := addrs(p); !slices.Equal(got, want) {
		t.Fatalf("servers %v, want %v", got, want)
	}
	// The SRV server's calculator address is taken now: a join naming it
	// from elsewhere is refused too, and the right server joins again.
	join(p, "127.0.0.1:9998", 7002)
	join(p, "127.0.0.1:7102", 7002)
	if got := addrs(p); !slices.Equal(got, want) {
		t.Fatalf("servers %v after joins, want %v", got, want)
	}
	if n := p.counters.drops[dropJoinRefused].Load(); n != 2 {
		t.Fatalf("%d joins refused, want the 2 phantoms", n)
	}
}
