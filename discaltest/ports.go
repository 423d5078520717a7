package discaltest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
)

// A program a test stops and starts again on the same port must find the
// port free when it comes back. A port from the kernel's ephemeral range
// (what :0 gives) is not kept for it: any socket bound to :0, or connected
// without a bind, may be given it in between, and the restart then fails
// with "address already in use" (TestDnsmasqKubernetesLayout did, once).
// The kernel never hands out a port below that range by itself, so a port
// chosen there stays free until someone names it.

// keptFloor is the lowest port ListenKept tries: above the ports that
// well-known services use.
const keptFloor = 10000

// keptTries bounds the ports ListenKept tries before it gives up: a port
// taken already (by another test that chose it) makes it try another.
const keptTries = 100

// ListenKept opens a UDP socket on ip at a free port below the kernel's
// ephemeral range. A program that is given the port, and stopped, can
// start again on it: the kernel gives it to no one else meanwhile.
func ListenKept(ip netip.Addr) (*net.UDPConn, error) {
	top := ephemeralLow()
	var err error
	for range keptTries {
		port := keptFloor + rand.IntN(top-keptFloor)
		var c *net.UDPConn
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("discaltest: no free port below %d on %s: %w", top, ip, err)
}

// KeptAddr is an address on ip, free now, at a port below the kernel's
// ephemeral range, for a program the test runs and restarts: ListenKept,
// closed, so that the program can bind it.
func KeptAddr(ip netip.Addr) (netip.AddrPort, error) {
	c, err := ListenKept(ip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range: Linux
// says it in /proc; elsewhere IANA's 49152 (the BSDs, macOS, Windows). On
// a machine whose range starts below keptFloor+1000 a kept port is only a
// free one.
func ephemeralLow() int {
	low := 49152
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if _, err := fmt.Sscan(string(b), &low); err != nil {
			low = 32768 // Linux's default
		}
	}
	return max(low, keptFloor+1000)
}
