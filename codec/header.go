package codec

import "encoding/binary"

// Magic is the first byte of every binary datagram. It names the wire version
// and lies outside printable ASCII, so a binary datagram is never mistaken for
// the text form.
const Magic byte = 0xD1

// HeaderSize is the length of the fixed header that precedes every body.
const HeaderSize = 10

// IDOffset is where the 64-bit request ID sits in the header.
const IDOffset = 2

// MaxDatagram is the largest datagram any discal endpoint reads or writes.
// Real requests are under 64 bytes; the bound keeps buffers small and any
// reply from being much larger than its request.
const MaxDatagram = 512

// Kind says what a binary datagram carries.
type Kind byte

// The message kinds. Their values are part of the wire format.
const (
	KindRequest      Kind = 1 // client -> proxy -> server: an operation
	KindReply        Kind = 2 // server -> proxy -> client: a result or an error
	KindStatusQuery  Kind = 3 // proxy -> server status port: empty body
	KindStatusReply  Kind = 4 // server status port -> proxy: load figures
	KindJoin         Kind = 5 // server status port -> proxy client port: "route work to me"
	KindJoinAck      Kind = 6 // proxy -> server status port: the join was taken; empty body
	KindControl      Kind = 7 // operator -> server status port: drain, undrain, burn F (Control)
	KindControlReply Kind = 8 // server status port -> operator: the command was obeyed (Control)

	// KindSealed is a flag on any kind: the message carries a seal, a
	// timestamp and an HMAC-SHA256 after its body (see Seal). 0x87 is a
	// sealed control command, 0x85 a sealed join.
	KindSealed Kind = 0x80
)

// Base returns the kind without the KindSealed flag.
func (k Kind) Base() Kind { return k &^ KindSealed }

// Sealed reports whether the kind carries the KindSealed flag.
func (k Kind) Sealed() bool { return k&KindSealed != 0 }

func (k Kind) String() string {
	if k.Sealed() && k.Base() != 0 {
		return "sealed " + k.Base().String()
	}
	switch k {
	case KindRequest:
		return "request"
	case KindReply:
		return "reply"
	case KindStatusQuery:
		return "status query"
	case KindStatusReply:
		return "status reply"
	case KindJoin:
		return "join"
	case KindJoinAck:
		return "join ack"
	case KindControl:
		return "control"
	case KindControlReply:
		return "control reply"
	}
	return "unknown kind"
}

// Header is the decoded fixed header of a binary datagram.
type Header struct {
	Kind Kind
	ID   uint64
}

// ParseHeader reads the fixed header of a binary datagram. It checks the
// magic and the length, not the kind: callers decide which kinds they take.
// It reports [ErrTooLarge] for a datagram longer than [MaxDatagram] with the
// header still filled in, so that the caller can answer it.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		if len(b) > 0 && b[0] != Magic {
			return Header{}, ErrMagic
		}
		return Header{}, ErrShort
	}
	if b[0] != Magic {
		return Header{}, ErrMagic
	}
	h := Header{Kind: Kind(b[1]), ID: binary.BigEndian.Uint64(b[IDOffset:])}
	if len(b) > MaxDatagram {
		return h, ErrTooLarge
	}
	return h, nil
}

// AppendHeader appends a header to dst.
func AppendHeader(dst []byte, kind Kind, id uint64) []byte {
	dst = append(dst, Magic, byte(kind))
	return binary.BigEndian.AppendUint64(dst, id)
}

// SetID rewrites the request ID of a datagram in place. The datagram must
// hold at least a header.
func SetID(b []byte, id uint64) {
	binary.BigEndian.PutUint64(b[IDOffset:], id)
}
