//go:build !linux

package udpbatch

import (
	"errors"
	"net"
)

type reader struct{ buf []byte }

func (r *Reader) init() { r.buf = make([]byte, r.opt.MaxSize+1) }

// ReadBatch waits for one datagram and returns it in ms[0]. Its bytes are
// the Reader's own, valid until the next call.
func (r *Reader) ReadBatch(ms []Message) (int, error) {
	n, addr, err := r.c.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		return 0, err
	}
	ms[0] = Message{Buf: r.buf[:n], Addr: unmap(addr)}
	return 1, nil
}

type writer struct{}

func (w *Writer) init() {}

// WriteBatch sends each message with its own call. A datagram the network
// refuses is skipped; only a closed socket stops the batch.
func (w *Writer) WriteBatch(ms []Message) (int, error) {
	for i := range ms {
		var err error
		if ms[i].Addr.IsValid() {
			_, err = w.c.WriteToUDPAddrPort(ms[i].Buf, ms[i].Addr)
		} else {
			_, err = w.c.Write(ms[i].Buf)
		}
		if errors.Is(err, net.ErrClosed) {
			return i, err
		}
	}
	return len(ms), nil
}
