package codec

import (
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Control is a command to a server's status port in binary form
// (KindControl): the text commands drain, undrain and burn F, in a form
// that can be sealed (see Seal). The server answers one it obeys with a
// KindControlReply carrying the command as applied, and one it cannot obey
// (a fraction out of range) with an error reply; one whose seal does not
// check is not answered at all.
//
// Its body is a map: "cmd" the command's name, and for burn "fraction",
// the fraction of a core, 0 to 1.
type Control struct {
	Cmd      string  // "drain", "undrain" or "burn"
	Fraction float64 // burn's fraction of a core, 0-1; 0 for the others
}

// The control commands.
const (
	CmdDrain   = "drain"
	CmdUndrain = "undrain"
	CmdBurn    = "burn"
)

// AppendControl appends a whole control datagram to dst, unsealed.
func AppendControl(dst []byte, id uint64, c Control) []byte {
	return appendControl(dst, KindControl, id, c)
}

// AppendControlReply appends the answer to a control command that was
// obeyed: the command as applied, with the command's ID.
func AppendControlReply(dst []byte, id uint64, c Control) []byte {
	return appendControl(dst, KindControlReply, id, c)
}

func appendControl(dst []byte, kind Kind, id uint64, c Control) []byte {
	dst = AppendHeader(dst, kind, id)
	return encode(dst, func(e *msgpack.Encoder) {
		if c.Cmd != CmdBurn {
			_ = e.EncodeMapLen(1)
			_ = e.EncodeString("cmd")
			_ = e.EncodeString(c.Cmd)
			return
		}
		_ = e.EncodeMapLen(2)
		_ = e.EncodeString("cmd")
		_ = e.EncodeString(c.Cmd)
		_ = e.EncodeString("fraction")
		_ = e.EncodeFloat64(c.Fraction)
	})
}

// DecodeControl decodes the body of a control command or its reply. The
// command must be one of the three; burn needs a fraction from 0 to 1, and
// the others take none. Unknown keys are skipped.
func DecodeControl(body []byte) (Control, error) {
	x := getDecoder(body)
	defer putDecoder(x)
	n, err := x.mapLen()
	if err != nil {
		return Control{}, err
	}
	var c Control
	hasFrac := false
	for range n {
		key, _, err := x.str()
		if err != nil {
			return Control{}, err
		}
		ok := true
		switch string(key) {
		case "cmd":
			var cmd []byte
			cmd, ok, err = x.str()
			c.Cmd = string(cmd)
		case "fraction":
			c.Fraction, ok, err = x.float()
			hasFrac = true
		default:
			err = x.skip()
		}
		if err != nil {
			return Control{}, err
		}
		if !ok {
			return Control{}, Errorf(CodeWrongType, "wrong type: control field %q", clip(string(key)))
		}
	}
	if err := c.check(hasFrac); err != nil {
		return Control{}, err
	}
	return c, x.end()
}

// CheckFraction is the rule on burn's fraction of a core, in the text form
// and the binary one: 0 to 1.
func CheckFraction(f float64) *Error {
	if f < 0 || f > 1 || math.IsNaN(f) {
		return Errorf(CodeSyntax, "syntax error: burn takes a fraction from 0 to 1")
	}
	return nil
}

// check is the rule on a decoded command's fields.
func (c Control) check(hasFrac bool) error {
	switch c.Cmd {
	case CmdDrain, CmdUndrain:
		if hasFrac {
			return Errorf(CodeSyntax, "syntax error: %s takes no fraction", c.Cmd)
		}
		return nil
	case CmdBurn:
		f := c.Fraction
		if !hasFrac {
			f = math.NaN()
		}
		if e := CheckFraction(f); e != nil {
			return e
		}
		return nil
	case "":
		return Errorf(CodeMissingField, "missing field: control without cmd")
	}
	return Errorf(CodeUnexpected, "unexpected message: control %q: try drain, undrain, burn", clip(c.Cmd))
}
