//go:build !linux

package udpbatch

import (
	"errors"
	"fmt"
	"net"
)

// Drops returns how many datagrams the kernel dropped on c before anyone
// read them. Only Linux tells: elsewhere it returns an error that wraps
// errors.ErrUnsupported.
func Drops(c net.PacketConn) (uint64, error) {
	return 0, fmt.Errorf("udpbatch: drops: %w", errors.ErrUnsupported)
}
