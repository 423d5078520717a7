package udpproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/udpbatch"
)

// batch is how many datagrams a reader takes per system call, and a writer
// sends.
const batch = 64

// listenOwn opens the proxy's own two sockets, on ip (any address when
// unset): one to talk to the servers' calculator ports, one for status
// polls and canaries, which only the poller reads, when it wakes: a Quiet
// socket, so that the answers do not wake the runtime as they come.
func listenOwn(ip netip.Addr) (upstream *net.UDPConn, poll *udpbatch.Quiet, err error) {
	local := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))
	if !ip.IsValid() {
		local = &net.UDPAddr{}
	}
	if upstream, err = net.ListenUDP("udp", local); err != nil {
		return nil, nil, fmt.Errorf("udpproxy: upstream socket: %w", err)
	}
	opt := udpbatch.Options{Batch: batch, MaxSize: codec.MaxDatagram}
	if poll, err = udpbatch.ListenQuiet(local, opt); err != nil {
		upstream.Close()
		return nil, nil, fmt.Errorf("udpproxy: poll socket: %w", err)
	}
	return upstream, poll, nil
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
