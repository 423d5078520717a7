// Package udpbatch moves many UDP datagrams per system call without
// allocating. On Linux a Reader uses recvmmsg with UDP GRO, and a Writer
// uses sendmmsg with UDP GSO: datagrams of one size to one address go down
// the stack as one buffer and are split at the far end. On loopback that
// cuts the cost of a send about six-fold, and the proxy, the servers and the
// bench spend most of their time sending. Elsewhere, and on kernels without
// GSO, and for any net.PacketConn that is not a *net.UDPConn, each call
// moves one datagram: every socket takes the same path in, and the fast
// one where it can.
package udpbatch

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// Message is one datagram: its bytes and its peer's address. A connected
// socket may leave Addr zero when writing. A link-local peer's address
// carries its interface as zone: read on Linux, it is the interface's index
// in decimal ("3"); written, it may be an index or a name.
type Message struct {
	Buf  []byte
	Addr netip.AddrPort
}

// Options sizes a Reader or Writer. Zero values mean the defaults.
type Options struct {
	// Batch is the most datagrams one call returns or sends. Default 64.
	Batch int
	// MaxSize is the largest datagram a Reader returns whole; a longer one
	// comes back cut to MaxSize+1 bytes so that the caller can tell.
	// Default 65507. Writers send what they are given.
	MaxSize int
	// NoGSO makes a Writer send one datagram per header, as a sender
	// without UDP GSO would: the bench uses it to offer the traffic shape
	// of ordinary clients.
	NoGSO bool
	// NoGRO makes a Reader ask the kernel to split a sender's GSO batch
	// into datagrams as it arrives, rather than queue it whole (UDP_GRO
	// off). The kernel counts a drop per buffer it throws away (Drops):
	// with GRO one drop may be 64 datagrams, without it each is one. The
	// proxy keeps GRO (without it the proxy spent about a quarter more CPU
	// under a GSO flood) and counts Buffers, in the units of Drops.
	NoGRO bool
	// Buffers, when set, counts the buffers a Reader takes from the
	// socket: a datagram, or a sender's GSO batch that GRO kept whole.
	// The kernel counts its drops in the same units (Drops), so buffers
	// read plus buffers dropped is what arrived, whatever the senders did.
	Buffers *atomic.Uint64
}

func (o *Options) fill() {
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.MaxSize <= 0 || o.MaxSize > maxUDP {
		o.MaxSize = maxUDP
	}
}

// maxUDP is the largest IPv4 UDP payload.
const maxUDP = 65507

// Reader reads datagrams from a socket in batches. One goroutine at a time
// may use a Reader; give each reading goroutine its own over the socket.
type Reader struct{ batchReader }

type batchReader interface {
	// ReadBatch waits for at least one datagram and returns up to len(ms)
	// of them. Their bytes are the Reader's own, valid until the next
	// call. A datagram longer than MaxSize comes back cut to MaxSize+1
	// bytes.
	ReadBatch(ms []Message) (int, error)
	// ReadReady is ReadBatch without the wait: it returns the datagrams
	// that have come, 0 when none has, for a caller that reads on its own
	// schedule. (On the portable path it may wait a fraction of a
	// millisecond.)
	ReadReady(ms []Message) (int, error)
}

// NewReader returns a Reader over c. Any net.PacketConn will do: a
// *net.UDPConn on Linux is read with recvmmsg and GRO, anything else (a
// wrapper that counts or filters, a test double, another system) one
// datagram per call through the net.PacketConn interface.
func NewReader(c net.PacketConn, opt Options) *Reader {
	opt.fill()
	return &Reader{newReader(c, opt)}
}

// Writer sends datagrams in batches. One goroutine at a time may use a
// Writer; give each writing goroutine its own over the socket.
type Writer struct{ batchWriter }

type batchWriter interface {
	// WriteBatch sends every message and returns how many were handled:
	// a datagram the network refuses, or whose address the socket cannot
	// reach, is skipped and counted, so that one bad peer never stops the
	// others. Only a failure of the socket itself stops it early.
	WriteBatch(ms []Message) (int, error)
}

// NewWriter returns a Writer over c. As with NewReader, any net.PacketConn
// will do; a *net.UDPConn on Linux sends with sendmmsg and GSO.
func NewWriter(c net.PacketConn, opt Options) *Writer {
	opt.fill()
	return &Writer{newWriter(c, opt)}
}

// unmap turns an IPv4-mapped IPv6 address into plain IPv4, so that a peer
// compares equal however the socket saw it.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
