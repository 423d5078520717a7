package udpbatch

import (
	"net"
	"sync"
)

// DropCounter counts what the kernel drops on a socket, as Drops reads it,
// in 64 bits that never go back: the kernel's counter has 32 and starts
// again from zero after 2^32 drops, which at a million a second is a bit
// over an hour. The zero value is ready to use; Read may be called from
// several goroutines.
type DropCounter struct {
	mu    sync.Mutex
	read  bool   // the kernel was asked at least once
	last  uint32 // the kernel's count at the last read
	total uint64
}

// Read asks the kernel for c's count and returns the total so far. When
// the kernel does not say (c is closed, or the system does not count), it
// returns the total as last read.
func (d *DropCounter) Read(c net.PacketConn) uint64 {
	n, err := Drops(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		d.add(uint32(n))
	}
	return d.total
}

// add takes the kernel's count n. Called with d.mu held.
func (d *DropCounter) add(n uint32) {
	// A count from a read that raced a later one is older than last: its
	// difference, read as signed, is negative and is ignored. The first
	// count is all new, however large.
	if delta := n - d.last; !d.read || int32(delta) > 0 {
		d.total += uint64(delta)
		d.last, d.read = n, true
	}
}
