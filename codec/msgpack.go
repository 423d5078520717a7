package codec

import (
	"bytes"
	"io"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The msgpack library's Encoder and Decoder carry state and small buffers;
// pooling them keeps encoding and decoding free of per-datagram allocation.

// sliceWriter appends to a caller's slice, so an encoder writes straight into
// the datagram being built.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *sliceWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type encoder struct {
	w sliceWriter
	e *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	x := new(encoder)
	x.e = msgpack.NewEncoder(&x.w)
	return x
}}

// encode runs fn with an encoder that appends to dst and returns the result.
// The writer never fails, so neither does fn's encoding.
func encode(dst []byte, fn func(e *msgpack.Encoder)) []byte {
	x := encoders.Get().(*encoder)
	x.w.b = dst
	fn(x.e)
	dst = x.w.b
	x.w.b = nil
	encoders.Put(x)
	return dst
}

// encodeNumber writes a number at full width: int64 as 0xd3 and eight
// bytes, float64 as 0xcb and eight bytes. Every request, and every result
// reply from one server, then has one size, which lets senders hand a batch
// of them to the kernel as one UDP GSO send, by far the cheapest way to send
// many datagrams. Decoders take any msgpack number width.
func encodeNumber(e *msgpack.Encoder, n Number) {
	if n.IsFloat {
		_ = e.EncodeFloat64(n.Float)
	} else {
		_ = e.EncodeInt64(n.Int)
	}
}

// maxKey is the longest map key we look at; longer keys are unknown ones,
// skipped like any other unknown key.
const maxKey = 16

type decoder struct {
	r   bytes.Reader
	d   *msgpack.Decoder
	buf [maxKey]byte
	// names interns server names: replies from a few servers repeat them
	// millions of times, and a lookup by bytes does not allocate.
	names map[string]string
}

var decoders = sync.Pool{New: func() any {
	x := &decoder{names: make(map[string]string)}
	x.d = msgpack.NewDecoder(&x.r)
	return x
}}

func getDecoder(body []byte) *decoder {
	x := decoders.Get().(*decoder)
	x.r.Reset(body)
	return x
}

func putDecoder(x *decoder) {
	x.r.Reset(nil)
	decoders.Put(x)
}

// mapLen starts a body: it must be one msgpack map.
func (x *decoder) mapLen() (int, error) {
	c, err := x.d.PeekCode()
	if err != nil {
		return 0, Errorf(CodeMalformed, "malformed request: empty")
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return 0, Errorf(CodeMalformed, "malformed request: not a map")
	}
	n, err := x.d.DecodeMapLen()
	if err != nil {
		return 0, malformed(err)
	}
	// Every entry takes at least two bytes: a larger count is a lie that
	// would only make us loop.
	if n > x.r.Len()/2 {
		return 0, Errorf(CodeMalformed, "malformed request: truncated map")
	}
	return n, nil
}

// end checks that the body held nothing after its map.
func (x *decoder) end() error {
	if x.r.Len() != 0 {
		return Errorf(CodeMalformed, "malformed request: trailing bytes")
	}
	return nil
}

func malformed(err error) *Error {
	return Errorf(CodeMalformed, "malformed request: %v", err)
}

// str reads a msgpack string into the decoder's scratch buffer. isString is
// false when the value is not a string, and s is nil when the string is longer
// than the buffer; either way the value has been consumed.
func (x *decoder) str() (s []byte, isString bool, err error) {
	n, ok, err := x.strHead()
	if !ok || err != nil {
		return nil, ok, err
	}
	if n > len(x.buf) {
		_, _ = x.r.Seek(int64(n), io.SeekCurrent)
		return nil, true, nil
	}
	if err := x.d.ReadFull(x.buf[:n]); err != nil {
		return nil, false, malformed(err)
	}
	return x.buf[:n], true, nil
}

// strHead reads a string's length. isString is false when the value is not
// a string; it has then been consumed.
func (x *decoder) strHead() (n int, isString bool, err error) {
	c, err := x.d.PeekCode()
	if err != nil {
		return 0, false, malformed(err)
	}
	if !msgpcode.IsString(c) {
		return 0, false, x.skip()
	}
	n, err = x.d.DecodeBytesLen()
	if err != nil {
		return 0, false, malformed(err)
	}
	if n > x.r.Len() {
		return 0, false, Errorf(CodeMalformed, "malformed request: truncated string")
	}
	return max(n, 0), true, nil
}

// longStr reads a string of any length the datagram can hold, as a Go string.
func (x *decoder) longStr() (string, bool, error) {
	n, ok, err := x.strHead()
	if !ok || err != nil {
		return "", ok, err
	}
	return x.readString(n)
}

func (x *decoder) readString(n int) (string, bool, error) {
	b := make([]byte, n)
	if err := x.d.ReadFull(b); err != nil {
		return "", false, malformed(err)
	}
	return string(b), true, nil
}

// name reads a server name, refused unless CheckName passes. Short names,
// the usual kind, are interned so that decoding the same few names millions
// of times allocates nothing; longer ones are read like any string.
func (x *decoder) name() (string, bool, error) {
	n, ok, err := x.strHead()
	if !ok || err != nil {
		return "", ok, err
	}
	if n > len(x.buf) {
		s, ok, err := x.readString(n)
		if err == nil {
			err = CheckName(s)
		}
		return s, ok, err
	}
	b := x.buf[:n]
	if err := x.d.ReadFull(b); err != nil {
		return "", false, malformed(err)
	}
	if s, hit := x.names[string(b)]; hit {
		return s, true, nil
	}
	s := string(b)
	if err := CheckName(s); err != nil {
		return "", false, err // and not interned
	}
	if len(x.names) < 256 {
		x.names[s] = s
	}
	return s, true, nil
}

// number reads an operand or result. ok is false when the value is not a
// msgpack number; it has then been consumed.
func (x *decoder) number() (n Number, ok bool, err error) {
	c, err := x.d.PeekCode()
	if err != nil {
		return Number{}, false, malformed(err)
	}
	switch {
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16,
		c == msgpcode.Int32, c == msgpcode.Int64:
		i, err := x.d.DecodeInt64()
		if err != nil {
			return Number{}, false, malformed(err)
		}
		return IntNumber(i), true, nil
	case c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
		u, err := x.d.DecodeUint64()
		if err != nil {
			return Number{}, false, malformed(err)
		}
		if u > math.MaxInt64 {
			return Number{}, true, Errorf(CodeOverflow, "integer overflow: operand %d does not fit in int64", u)
		}
		return IntNumber(int64(u)), true, nil
	case c == msgpcode.Float, c == msgpcode.Double:
		f, err := x.d.DecodeFloat64()
		if err != nil {
			return Number{}, false, malformed(err)
		}
		return FloatNumber(f), true, nil
	}
	return Number{}, false, x.skip()
}

// uint reads a non-negative integer field.
func (x *decoder) uint() (uint64, bool, error) {
	n, ok, err := x.number()
	if !ok || err != nil || n.IsFloat || n.Int < 0 {
		return 0, false, err
	}
	return uint64(n.Int), true, nil
}

// float reads a number field of either kind as a float64.
func (x *decoder) float() (float64, bool, error) {
	n, ok, err := x.number()
	if !ok || err != nil {
		return 0, false, err
	}
	return n.Float64(), true, nil
}

// maxDepth bounds how deeply nested a skipped value may be.
const maxDepth = 32

// skip consumes one msgpack value of any type. It does not use the
// library's Skip: that trusts a string's declared length and grows the
// pooled decoder's buffer by a megabyte for every string that claims to be
// huge, so a flood of such datagrams would eat the server's memory. Here
// every declared length is checked against the bytes left, and nesting is
// bounded, so no datagram can make skipping allocate or loop.
func (x *decoder) skip() error { return x.skipValue(0) }

func (x *decoder) skipValue(depth int) error {
	if depth > maxDepth {
		return Errorf(CodeMalformed, "malformed request: nested too deeply")
	}
	c, err := x.r.ReadByte()
	if err != nil {
		return Errorf(CodeMalformed, "malformed request: truncated")
	}
	var size, items int // bytes to pass over; values inside
	switch {
	case c <= 0x7f || c >= 0xe0, c == msgpcode.Nil, c == msgpcode.False, c == msgpcode.True:
		return nil
	case msgpcode.IsFixedMap(c):
		items = 2 * int(c&0x0f)
	case msgpcode.IsFixedArray(c):
		items = int(c & 0x0f)
	case msgpcode.IsFixedString(c):
		size = int(c & 0x1f)
	default:
		switch c {
		case msgpcode.Uint8, msgpcode.Int8:
			size = 1
		case msgpcode.Uint16, msgpcode.Int16:
			size = 2
		case msgpcode.Uint32, msgpcode.Int32, msgpcode.Float:
			size = 4
		case msgpcode.Uint64, msgpcode.Int64, msgpcode.Double:
			size = 8
		case msgpcode.FixExt1, msgpcode.FixExt2, msgpcode.FixExt4, msgpcode.FixExt8, msgpcode.FixExt16:
			size = 1 + 1<<(c-msgpcode.FixExt1) // a type byte and 1 to 16 bytes
		case msgpcode.Str8, msgpcode.Bin8:
			size, err = x.length(1)
		case msgpcode.Str16, msgpcode.Bin16:
			size, err = x.length(2)
		case msgpcode.Str32, msgpcode.Bin32:
			size, err = x.length(4)
		case msgpcode.Ext8, msgpcode.Ext16, msgpcode.Ext32:
			size, err = x.length(1 << (c - msgpcode.Ext8))
			size++ // the type byte
		case msgpcode.Array16:
			items, err = x.length(2)
		case msgpcode.Array32:
			items, err = x.length(4)
		case msgpcode.Map16:
			items, err = x.length(2)
			items *= 2
		case msgpcode.Map32:
			items, err = x.length(4)
			items *= 2
		default:
			return Errorf(CodeMalformed, "malformed request: invalid code 0x%02x", c)
		}
		if err != nil {
			return err
		}
	}
	// Every value takes at least a byte: a count or size beyond what is
	// left is a lie.
	if size > x.r.Len() || items > x.r.Len() {
		return Errorf(CodeMalformed, "malformed request: truncated")
	}
	_, _ = x.r.Seek(int64(size), io.SeekCurrent)
	for range items {
		if err := x.skipValue(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// length reads a big-endian length of n bytes.
func (x *decoder) length(n int) (int, error) {
	if x.r.Len() < n {
		return 0, Errorf(CodeMalformed, "malformed request: truncated")
	}
	v := 0
	for range n {
		b, _ := x.r.ReadByte()
		v = v<<8 | int(b)
	}
	return v, nil
}
