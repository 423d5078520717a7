// Package codec is discal's wire format: the datagrams that clients, the
// proxy and the servers exchange, and the plain-text form that a person can
// type into netcat.
//
// A binary datagram is a fixed 10-byte header followed by a body:
//
//	offset  size  field
//	0       1     magic/version, 0xD1 (discal wire version 1)
//	1       1     kind: 1 request, 2 reply, 3 status query, 4 status reply,
//	              5 join, 6 join ack, 7 control, 8 control reply;
//	              with 0x80 set (KindSealed), the same message sealed
//	2       8     request ID, unsigned, big-endian
//	10      ...   body: one msgpack map (Request, Reply, Status, Join,
//	              Control); for a status query zero bytes of padding
//	              (AppendStatusQuery); nothing for a join ack
//
// A sealed message ends with a seal ([Seal], [SealSize] bytes): a
// timestamp and an HMAC-SHA256 under a shared key of everything before it.
// A receiver with the key obeys a control message (a control command, a
// join, a join ack) from a source other than loopback only when its seal
// checks ([Authenticator.Open]): the MAC in constant time, the timestamp
// within [SealWindow], and no replay ([ReplayCache]).
//
// The request ID sits at a fixed offset so that the proxy can route and
// rewrite a datagram without decoding its body. No datagram is larger than
// [MaxDatagram] bytes, and no answer larger than [MaxAmplification] times
// the request it answers: [Fits] is that rule and [AppendBounded] keeps to
// it.
//
// A datagram whose first byte is printable ASCII is the text form instead:
// "6 * 7", "7 / 2" or "add 2 3" ([ParseExpr]), answered by a line such as
// "42" or "error: division by zero" ([AppendTextReply]).
//
// Decoding never panics on any input; every decoder has a fuzz target.
// Names and error messages a server supplies are checked where they are
// decoded ([CheckName], [CheckMessage], [ErrBadText]).
package codec
