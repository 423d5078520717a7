//go:build linux

package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Drops returns how many datagrams the kernel dropped on c before anyone
// read them, mostly because the socket's receive queue was full: the count
// in the drops column of /proc/net/udp. It costs one system call, made only
// when asked, so counting costs the datagram path nothing. The kernel keeps
// a 32-bit counter, which starts again from zero after 2^32 drops: a
// DropCounter makes a total of it that does not.
//
// A socket that is not a *net.UDPConn has no count of its own: Drops
// returns an error that wraps errors.ErrUnsupported.
func Drops(c net.PacketConn) (uint64, error) {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return 0, fmt.Errorf("udpbatch: drops: not a UDP socket: %w", errors.ErrUnsupported)
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("udpbatch: drops: %w", err)
	}
	var (
		info  [unix.SK_MEMINFO_VARS]uint32
		size  = uint32(unsafe.Sizeof(info))
		errno syscall.Errno
	)
	err = rc.Control(func(fd uintptr) {
		// SO_MEMINFO (Linux 4.6) returns the socket's counters in one
		// array; x/sys has no wrapper for an array option.
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("udpbatch: drops: %w", err)
	case errno != 0:
		return 0, fmt.Errorf("udpbatch: drops: SO_MEMINFO: %w", errno)
	case size <= unix.SK_MEMINFO_DROPS*4:
		return 0, fmt.Errorf("udpbatch: drops: the kernel does not count them: %w", errors.ErrUnsupported)
	}
	return uint64(info[unix.SK_MEMINFO_DROPS]), nil
}
