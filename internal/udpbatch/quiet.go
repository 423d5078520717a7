package udpbatch

import (
	"net"
	"sync/atomic"
)

// Quiet is a UDP socket for one goroutine that reads on its own schedule
// and never waits on the socket: the proxy's poller, which sends a window's
// polls and reads their answers when the window is up. The Go runtime's
// network poller watches every socket net opens, and on Linux it wakes for
// each datagram that arrives and each one sent (the kernel tells it the
// socket is readable, then writable again), though nobody waits: an idle
// proxy polling a thousand servers 10,000 times a second made about 4,900
// context switches a second; on a Quiet socket, about 2,100, about 900
// with quietCall's raw calls, and about 400 once the poller also sent 256
// polls a window rather than 64. On Linux a Quiet socket is outside that poller:
// ReadReady reads without waiting (MSG_DONTWAIT), and nothing wakes for
// it. Elsewhere it is an ordinary socket on the portable path.
//
// One goroutine at a time may read, and one write; Close may come from
// any, after which both report net.ErrClosed.
type Quiet struct {
	sock   quietSocket
	laddr  net.Addr
	r      batchReader
	w      batchWriter
	closed atomic.Bool
}

// ListenQuiet opens a Quiet socket at laddr (any port if its port is 0,
// every address of the host if its IP is nil), read and written with opt.
func ListenQuiet(laddr *net.UDPAddr, opt Options) (*Quiet, error) {
	opt.fill()
	q := &Quiet{}
	if err := q.listen(laddr, opt); err != nil {
		return nil, err
	}
	return q, nil
}

// ReadReady returns the datagrams that have come, 0 when none has, as
// Reader.ReadReady does.
func (q *Quiet) ReadReady(ms []Message) (int, error) {
	n, err := q.r.ReadReady(ms)
	if err != nil && q.closed.Load() {
		return 0, net.ErrClosed
	}
	return n, err
}

// WriteBatch sends every message, as Writer.WriteBatch does.
func (q *Quiet) WriteBatch(ms []Message) (int, error) {
	n, err := q.w.WriteBatch(ms)
	if err != nil && q.closed.Load() {
		return n, net.ErrClosed
	}
	return n, err
}

// LocalAddr is where the socket is bound.
func (q *Quiet) LocalAddr() net.Addr { return q.laddr }

// Close closes the socket. A read or write under way finishes first; the
// next reports net.ErrClosed.
func (q *Quiet) Close() error {
	if q.closed.Swap(true) {
		return net.ErrClosed
	}
	return q.sock.Close()
}
