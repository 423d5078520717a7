package codec

import (
	"errors"
	"fmt"
)

// Code is the stable number of an error reply. Codes are part of the wire
// format: clients switch on them, so a code never changes its meaning.
type Code uint16

// The error codes. Codes from 20 on come from the proxy and are transient:
// the same request may succeed when sent again.
const (
	CodeMalformed    Code = 1  // the body is not a well-formed msgpack map
	CodeUnknownOp    Code = 2  // "op" is not add, sub, mul or div
	CodeMissingField Code = 3  // "op", "a" or "b" is absent
	CodeWrongType    Code = 4  // a field has the wrong msgpack type
	CodeDivByZero    Code = 5  // division by zero
	CodeOverflow     Code = 6  // an integer result or operand does not fit in int64
	CodeNaN          Code = 7  // an operand is NaN
	CodeInfinite     Code = 8  // an operand is infinite
	CodeNotFinite    Code = 9  // a float result overflowed to infinity
	CodeSyntax       Code = 10 // the text form could not be parsed
	CodeTooLarge     Code = 11 // the datagram is over MaxDatagram bytes
	CodeUnexpected   Code = 12 // a message kind or command this port does not take
	CodeNoServer     Code = 20 // the proxy has no server in rotation
	CodeTimeout      Code = 21 // no server answered in time
	CodeBusy         Code = 22 // the receiver is at its bound and shed the request
)

// Transient reports whether a request that got this code may succeed when
// sent again: the calculation was not attempted or its answer was lost.
func (c Code) Transient() bool { return c >= 20 && c < 40 }

// Error is an error carried in a reply. Its message is what clients show,
// so it has no package prefix: "division by zero", not "codec: ...".
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is match on the code, so that an error decoded from the
// wire matches the sentinel below whatever detail its message carries.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// The reply errors, one for each code.
var (
	ErrMalformed    = &Error{CodeMalformed, "malformed request"}
	ErrUnknownOp    = &Error{CodeUnknownOp, "unknown operation"}
	ErrMissingField = &Error{CodeMissingField, "missing field"}
	ErrWrongType    = &Error{CodeWrongType, "wrong type"}
	ErrDivByZero    = &Error{CodeDivByZero, "division by zero"}
	ErrOverflow     = &Error{CodeOverflow, "integer overflow"}
	ErrNaN          = &Error{CodeNaN, "operand is NaN"}
	ErrInfinite     = &Error{CodeInfinite, "operand is infinite"}
	ErrNotFinite    = &Error{CodeNotFinite, "result is not finite"}
	ErrSyntax       = &Error{CodeSyntax, "syntax error"}
	ErrTooLarge     = &Error{CodeTooLarge, "datagram too large"}
	ErrUnexpected   = &Error{CodeUnexpected, "unexpected message"}
	ErrNoServer     = &Error{CodeNoServer, "no server available"}
	ErrTimeout      = &Error{CodeTimeout, "timeout"}
	ErrBusy         = &Error{CodeBusy, "busy"}
)

// sentinels maps each code to its error with the standard message.
var sentinels = map[Code]*Error{}

func init() {
	for _, e := range []*Error{ErrMalformed, ErrUnknownOp, ErrMissingField, ErrWrongType, ErrDivByZero,
		ErrOverflow, ErrNaN, ErrInfinite, ErrNotFinite, ErrSyntax, ErrTooLarge, ErrUnexpected,
		ErrNoServer, ErrTimeout, ErrBusy} {
		sentinels[e.Code] = e
	}
}

// Short returns the error with its code's standard message and no detail:
// the form a reply takes when the detailed one would be too large for the
// request it answers (see AppendBounded).
func (e *Error) Short() *Error {
	if s, ok := sentinels[e.Code]; ok {
		return s
	}
	return &Error{Code: e.Code, Message: "error"}
}

// MaxAmplification bounds every answer to an untrusted source: at most this
// many times the size of the request it answers (Fits). A reply that would
// be larger is sent in its short form (AppendBounded), which always fits:
// the shortest request that gets an answer is MinTextRequest bytes of text
// or a HeaderSize-byte binary header. Spoofing a victim's address therefore
// gains an attacker at most a tenfold flood. The text commands whose
// answers are larger (status, stats) are answered to trusted sources only.
const MaxAmplification = 10

// MinTextRequest is the shortest text datagram that gets an answer: "1+1".
// Anything shorter cannot be a question, and answering it would amplify.
const MinTextRequest = 3

// Errors about a datagram as a whole, before any body is read. Such a
// datagram has no request ID to answer to, so it is dropped and counted.
var (
	ErrShort = errors.New("codec: datagram shorter than the header")
	ErrMagic = errors.New("codec: unknown magic or version")
)

// ErrBadText is wrapped by the error of a decoder that refused a datagram
// for a server name or an error message that is not printable text, or too
// long (see CheckName and CheckMessage). It is not answered: it comes from
// a server, and is counted by whoever received it.
var ErrBadText = errors.New("codec: unprintable name or message")

// AsError returns err as a reply error: itself when it is one, otherwise
// ErrMalformed with err's text, so that every failure can be answered.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeMalformed, Message: "malformed request: " + err.Error()}
}
