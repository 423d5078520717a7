//go:build !linux

package udpbatch

import "net"

// Without recvmmsg and sendmmsg every socket takes the portable path
// (packet.go).

func newReader(c net.PacketConn, opt Options) batchReader { return newPacketReader(c, opt) }

func newWriter(c net.PacketConn, _ Options) batchWriter { return packetWriter{c} }
