package discaltest

import (
	"net"
	"net/netip"
	"testing"
)

// TestListenKept: the port is below the kernel's ephemeral range, on the
// address asked for, and free again once closed: a program can take it.
func TestListenKept(t *testing.T) {
	ip := netip.MustParseAddr("127.0.0.1")
	c, err := ListenKept(ip)
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	if addr.Addr() != ip || int(addr.Port()) < keptFloor || int(addr.Port()) >= ephemeralLow() {
		t.Errorf("ListenKept gave %v; want %v at a port in [%d, %d)", addr, ip, keptFloor, ephemeralLow())
	}
	if twice, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr)); err == nil {
		twice.Close()
		t.Error("the kept port could be bound twice")
	}
	c.Close()
	again, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("closed, the kept port could not be bound again: %v", err)
	}
	again.Close()
}
