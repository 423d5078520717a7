package udpproxy

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/discal/discal/codec"
)

// TestJoinControlKey: with a key, a join from a host that is not loopback
// is taken only sealed under it, and its ack is sealed; the rest are
// dropped as unauthenticated and not answered. Joins are handed to
// membership as its goroutine would, from addresses across the network,
// which no test socket can have; e2e's TestControlKeyNetns sends real ones.
func TestJoinControlKey(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, codec.MinKeySize)
	p, err := New(Config{JoinAllow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, ControlKey: key, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ackConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ackConn.Close()
	p.members.start(ackConn)
	server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	// The joins come "from" 192.0.2.x; the acks go to that address, where
	// nothing reads them, except for the loopback one.
	now := time.Now()
	joinMsg := func(port uint16) []byte { return codec.AppendJoin(nil, 5, codec.Join{CalcPort: port}) }
	replayed := codec.Seal(joinMsg(7005), key, now)
	tests := []struct {
		name  string
		from  string
		pkt   []byte
		taken bool
	}{
		{"unsealed", "192.0.2.1:7101", joinMsg(7001), false},
		{"another key", "192.0.2.2:7101", codec.Seal(joinMsg(7002), bytes.Repeat([]byte{1}, codec.MinKeySize), now), false},
		{"expired", "192.0.2.3:7101", codec.Seal(joinMsg(7003), key, now.Add(-time.Minute)), false},
		{"sealed", "192.0.2.5:7101", replayed, true},
		{"replayed", "192.0.2.6:7101", replayed, false},
		{"loopback, unsealed", server.LocalAddr().String(), joinMsg(7007), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := netip.MustParseAddrPort(tt.from)
			before := p.Stats().Drops["unauthenticated"]
			p.members.join(joinOffer{from: from, id: 5, pkt: tt.pkt})
			calc := netip.AddrPortFrom(from.Addr(), joinPort(t, tt.pkt))
			found := p.members.find(calc, from) != nil
			if found != tt.taken {
				t.Fatalf("taken %v, want %v", found, tt.taken)
			}
			if got := p.Stats().Drops["unauthenticated"] - before; got != map[bool]uint64{true: 0, false: 1}[tt.taken] {
				t.Fatalf("%d counted unauthenticated", got)
			}
		})
	}
	// The loopback join's ack is sealed under the key.
	buf := make([]byte, codec.MaxDatagram)
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := server.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := codec.ParseHeader(buf[:n]); h.Kind != codec.KindJoinAck|codec.KindSealed || h.ID != 5 {
		t.Fatalf("ack %x: want a sealed join ack", buf[:n])
	}
	if _, _, _, err := codec.Check(buf[:n], key, time.Now()); err != nil {
		t.Fatalf("the ack's seal: %v", err)
	}
}

// joinPort is the calculator port a join datagram, sealed or not, claims.
func joinPort(t *testing.T, pkt []byte) uint16 {
	t.Helper()
	body := pkt[codec.HeaderSize:]
	if codec.Kind(pkt[1]).Sealed() {
		body = body[:len(body)-codec.SealSize]
	}
	j, err := codec.DecodeJoin(body)
	if err != nil {
		t.Fatal(err)
	}
	return j.CalcPort
}
