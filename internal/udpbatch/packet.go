package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// The portable path: one datagram per call, through the net.PacketConn
// interface. It serves every socket that the batch calls cannot (a wrapper
// that counts or filters, a test double, a system without recvmmsg), and a
// *net.UDPConn everywhere but Linux. A *net.UDPConn is read and written
// through its netip calls, which do not allocate; any other PacketConn
// costs an address per datagram.

type packetReader struct {
	buffers *atomic.Uint64 // Options.Buffers
	c       net.PacketConn
	udp     *net.UDPConn // c, when it is one
	buf     []byte
}

func newPacketReader(c net.PacketConn, opt Options) *packetReader {
	r := &packetReader{c: c, buf: make([]byte, opt.MaxSize+1), buffers: opt.Buffers}
	r.udp, _ = c.(*net.UDPConn)
	return r
}

// ReadBatch waits for one datagram and returns it in ms[0].
func (r *packetReader) ReadBatch(ms []Message) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	var (
		n    int
		from netip.AddrPort
		err  error
	)
	if r.udp != nil {
		n, from, err = r.udp.ReadFromUDPAddrPort(r.buf)
	} else {
		var a net.Addr
		n, a, err = r.c.ReadFrom(r.buf)
		from = AddrPort(a)
	}
	if err != nil {
		return 0, err
	}
	if r.buffers != nil {
		r.buffers.Add(1)
	}
	ms[0] = Message{Buf: r.buf[:n], Addr: unmap(from)}
	return 1, nil
}

// readyWait is how long ReadReady waits on the portable path, which has
// no read that does not wait: long enough for a datagram that is there to
// be read, short enough for the caller's schedule.
const readyWait = 100 * time.Microsecond

// ReadReady reads what has come, waiting readyWait at most. It takes the
// socket's read deadline for that time, and leaves none.
func (r *packetReader) ReadReady(ms []Message) (int, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(readyWait))
	n, err := r.ReadBatch(ms)
	_ = r.c.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	return n, err
}

type packetWriter struct{ c net.PacketConn }

// WriteBatch sends each message with its own call. A datagram the network
// refuses is skipped; only a closed socket stops the batch.
func (w packetWriter) WriteBatch(ms []Message) (int, error) {
	for i := range ms {
		if err := WriteTo(w.c, ms[i].Buf, ms[i].Addr); errors.Is(err, net.ErrClosed) {
			return i, err
		}
	}
	return len(ms), nil
}

// WriteTo sends one datagram b to addr on c, or on c's own peer when addr
// is zero (a connected socket). On a *net.UDPConn it allocates nothing.
func WriteTo(c net.PacketConn, b []byte, addr netip.AddrPort) error {
	var err error
	switch u, ok := c.(*net.UDPConn); {
	case ok && addr.IsValid():
		_, err = u.WriteToUDPAddrPort(b, addr)
	case ok:
		_, err = u.Write(b)
	case addr.IsValid():
		_, err = c.WriteTo(b, net.UDPAddrFromAddrPort(addr))
	default:
		err = errors.New("udpbatch: no address to send to")
	}
	return err
}

// AddrPort returns a socket address as a netip.AddrPort, IPv4-mapped
// addresses unmapped as the readers return them, so that every caller sees
// one form. An address that is not IP gives the zero AddrPort.
func AddrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case nil:
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return unmap(ap)
}
