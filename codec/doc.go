// Package codec is discal's wire format: the datagrams that clients, the
// proxy and the servers exchange, and the plain-text form that a person can
// type into netcat.
//
// A binary datagram is a fixed 10-byte header followed by a msgpack body:
//
//	offset  size  field
//	0       1     magic/version, 0xD1 (discal wire version 1)
//	1       1     kind: 1 request, 2 reply, 3 status query, 4 status reply
//	2       8     request ID, unsigned, big-endian
//	10      ...   body: one msgpack map (none for a status query)
//
// The request ID sits at a fixed offset so that the proxy can route and
// rewrite a datagram without decoding its body. No datagram is larger than
// [MaxDatagram] bytes.
//
// A datagram whose first byte is printable ASCII is the text form instead:
// "6 * 7", "7 / 2" or "add 2 3", answered by a line such as "42" or
// "error: division by zero".
//
// Decoding never panics on any input; every decoder has a fuzz target.
package codec
