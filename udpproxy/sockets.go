package udpproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// batch is how many datagrams a reader takes per system call, and a writer
// sends.
const batch = 64

// listenOwn opens the proxy's own two sockets, on ip (any address when
// unset): one to talk to the servers' calculator ports, one for status
// polls and canaries.
func listenOwn(ip netip.Addr) (upstream, poll *net.UDPConn, err error) {
	local := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))
	if !ip.IsValid() {
		local = &net.UDPAddr{}
	}
	if upstream, err = net.ListenUDP("udp", local); err != nil {
		return nil, nil, fmt.Errorf("udpproxy: upstream socket: %w", err)
	}
	if poll, err = net.ListenUDP("udp", local); err != nil {
		upstream.Close()
		return nil, nil, fmt.Errorf("udpproxy: poll socket: %w", err)
	}
	return upstream, poll, nil
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
