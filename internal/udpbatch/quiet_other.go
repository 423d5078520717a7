//go:build !linux

package udpbatch

import "net"

// quietSocket is an ordinary socket here: the portable path waits a
// fraction of a millisecond in ReadReady, and the runtime polls it.
type quietSocket = *net.UDPConn

func (q *Quiet) listen(laddr *net.UDPAddr, opt Options) error {
	c, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return err
	}
	q.sock, q.laddr = c, c.LocalAddr()
	q.r, q.w = newReader(c, opt), newWriter(c, opt)
	return nil
}
