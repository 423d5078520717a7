package codec

import "github.com/vmihailenco/msgpack/v5"

// Op is an arithmetic operation. On the wire it is the string of its name.
type Op byte

// The operations.
const (
	OpAdd Op = iota + 1
	OpSub
	OpMul
	OpDiv
)

var opNames = [...]string{OpAdd: "add", OpSub: "sub", OpMul: "mul", OpDiv: "div"}
var opSymbols = [...]string{OpAdd: "+", OpSub: "-", OpMul: "*", OpDiv: "/"}

// Ops lists every operation, for callers that pick one at random.
var Ops = []Op{OpAdd, OpSub, OpMul, OpDiv}

// String returns the wire name: "add", "sub", "mul" or "div".
func (o Op) String() string {
	if o.Valid() {
		return opNames[o]
	}
	return "invalid"
}

// Symbol returns the infix operator: "+", "-", "*" or "/".
func (o Op) Symbol() string {
	if o.Valid() {
		return opSymbols[o]
	}
	return "?"
}

// Valid reports whether o is one of the four operations.
func (o Op) Valid() bool { return o >= OpAdd && o <= OpDiv }

// ParseOp reads an operation's wire name or its infix symbol.
func ParseOp(s string) (Op, bool) {
	for o := OpAdd; o <= OpDiv; o++ {
		if s == opNames[o] || s == opSymbols[o] {
			return o, true
		}
	}
	return 0, false
}

func parseOpBytes(b []byte) (Op, bool) {
	for o := OpAdd; o <= OpDiv; o++ {
		if string(b) == opNames[o] {
			return o, true
		}
	}
	return 0, false
}

// Request is one operation with its two operands. Its body on the wire is the
// map {"op": "add", "a": 2, "b": 3}; operands are msgpack integers or floats.
type Request struct {
	Op   Op
	A, B Number
}

// RequestSize is the length of every request AppendRequest writes.
const RequestSize = HeaderSize + 1 + 3 + 4 + 2 + 9 + 2 + 9

// AppendRequest appends a whole request datagram, header and body, to dst.
func AppendRequest(dst []byte, id uint64, r Request) []byte {
	dst = AppendHeader(dst, KindRequest, id)
	return encode(dst, func(e *msgpack.Encoder) {
		_ = e.EncodeMapLen(3)
		_ = e.EncodeString("op")
		_ = e.EncodeString(r.Op.String())
		_ = e.EncodeString("a")
		encodeNumber(e, r.A)
		_ = e.EncodeString("b")
		encodeNumber(e, r.B)
	})
}

// DecodeRequest decodes a request body, the bytes after the header. Every
// failure is an *Error ready to be sent back: malformed, missing field, wrong
// type, unknown operation or an operand out of range. Unknown keys are
// skipped so that newer clients can add fields.
func DecodeRequest(body []byte) (Request, error) {
	x := getDecoder(body)
	defer putDecoder(x)
	n, err := x.mapLen()
	if err != nil {
		return Request{}, err
	}
	var r Request
	var haveA, haveB bool
	for range n {
		key, _, err := x.str()
		if err != nil {
			return Request{}, err
		}
		if key == nil {
			if err := x.skip(); err != nil {
				return Request{}, err
			}
			continue
		}
		switch string(key) {
		case "op":
			name, ok, err := x.str()
			if err != nil {
				return Request{}, err
			}
			if !ok {
				return Request{}, Errorf(CodeWrongType, `wrong type: "op" must be a string`)
			}
			op, known := parseOpBytes(name)
			if !known {
				if name == nil {
					return Request{}, Errorf(CodeUnknownOp, "unknown operation")
				}
				return Request{}, Errorf(CodeUnknownOp, "unknown operation %q", name)
			}
			r.Op = op
		case "a", "b":
			isA := key[0] == 'a'
			v, ok, err := x.number()
			if err != nil {
				return Request{}, err
			}
			if !ok {
				return Request{}, Errorf(CodeWrongType, "wrong type: %q must be a number", key)
			}
			if isA {
				r.A, haveA = v, true
			} else {
				r.B, haveB = v, true
			}
		default:
			if err := x.skip(); err != nil {
				return Request{}, err
			}
		}
	}
	switch {
	case r.Op == 0:
		return Request{}, Errorf(CodeMissingField, `missing field "op"`)
	case !haveA:
		return Request{}, Errorf(CodeMissingField, `missing field "a"`)
	case !haveB:
		return Request{}, Errorf(CodeMissingField, `missing field "b"`)
	}
	return r, x.end()
}
