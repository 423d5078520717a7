//go:build linux

package udpbatch

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// quietSocket holds the descriptor. An *os.File over a blocking socket is
// one the runtime does not poll, and it still counts the system calls
// under way, so that Close never closes a descriptor one of them uses.
// Reads pass MSG_DONTWAIT and so never wait; a write waits, as a blocking
// send does, only while the socket's send buffer is full.
type quietSocket = *os.File

func (q *Quiet) listen(laddr *net.UDPAddr, opt Options) error {
	ap := netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	if laddr != nil {
		ap = laddr.AddrPort()
		if !ap.Addr().IsValid() {
			ap = netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
		}
	}
	fd, err := quietBind(ap)
	if err != nil {
		return fmt.Errorf("listen udp %v: %w", ap, err)
	}
	f := os.NewFile(uintptr(fd), "udp "+ap.String())
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		f.Close()
		return err
	}
	q.sock, q.laddr = f, sockaddrUDP(sa)
	r := &mmsgReader{opt: opt}
	r.init(rc)
	r.m.quiet = true
	w := &mmsgWriter{opt: opt}
	w.init(rc)
	w.m.quiet = true
	q.r, q.w = r, w
	return nil
}

// quietBind opens a blocking UDP socket bound to ap: IPv4 for an IPv4
// address, else IPv6, which for the unspecified address takes IPv4 too
// (as net does), or IPv4 alone on a host without IPv6.
func quietBind(ap netip.AddrPort) (int, error) {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return bindSocket(unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()})
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return -1, err
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	fd, err := bindSocket(unix.AF_INET6, sa)
	if err == unix.EAFNOSUPPORT && a.IsUnspecified() {
		return bindSocket(unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port())})
	}
	return fd, err
}

func bindSocket(family int, sa unix.Sockaddr) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, err
	}
	if family == unix.AF_INET6 {
		// Both families on one socket, as net's wildcard listeners are.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// sockaddrUDP is a bound socket's address as net says it.
func sockaddrUDP(sa unix.Sockaddr) *net.UDPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrInet6:
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)))
	}
	return &net.UDPAddr{}
}

// quietCall makes m's call on a Quiet socket: one that does not wait
// (MSG_DONTWAIT), made raw, without telling the scheduler. A system call
// made the usual way wakes the runtime's sysmon thread, if it sleeps, as
// it returns, and sysmon then checks every 20 µs for a millisecond
// before it backs off: for a poller that wakes a few hundred times a
// second, that was more than half its context switches (about 2,100 a
// second at 10,000 polls a second, against about 900 with raw calls;
// perf stat, 5 s). These calls cannot
// block, so the scheduler has nothing to do about them. A send the
// socket has no room for is made again the usual way, and waits.
func (m *mmsg) quietCall(trap, fd uintptr) (uintptr, syscall.Errno) {
	hdrs, count := uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(m.count)
	n, _, errno := unix.RawSyscall6(trap, fd, hdrs, count, unix.MSG_DONTWAIT, 0, 0)
	if errno == unix.EAGAIN && trap == unix.SYS_SENDMMSG {
		n, _, errno = unix.Syscall6(trap, fd, hdrs, count, 0, 0, 0)
	}
	return n, errno
}
