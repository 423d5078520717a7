package codec

import (
	"errors"
	"strconv"
	"strings"
)

// IsText reports whether a datagram is the text form: non-empty and nothing
// but printable ASCII, spaces, tabs and line ends. A binary datagram starts
// with Magic, which is not printable, so the two never overlap.
func IsText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// TextCommand returns a text datagram with surrounding space and line ends
// removed, and lower-cased: what a person typed into netcat.
func TextCommand(b []byte) string {
	return strings.ToLower(strings.TrimSpace(string(b)))
}

// ParseExpr reads an operation in the text form: infix "6 * 7", "7/2",
// "-3 - -2", "1.5e3 + 1", or prefix "add 2 3" (add, sub, mul, div). Operands
// are integers when they are written as integers and fit in int64, floats
// otherwise; "inf" and "nan" are read as floats so that the server can answer
// them with its explicit error.
func ParseExpr(s string) (Request, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Request{}, Errorf(CodeSyntax, "syntax error: empty expression")
	}
	if op, ok := parseWordOp(fields[0]); ok {
		if len(fields) != 3 {
			return Request{}, Errorf(CodeSyntax, "syntax error: %s takes two numbers", op)
		}
		return parseOperands(op, fields[1], fields[2])
	}
	// Infix: join the fields so that "2 + 3", "2+3" and "2 +3" read alike,
	// then split at the operator, which is the first operator character
	// after the first operand's own sign and not part of an exponent.
	e := strings.Join(fields, "")
	for i := 1; i < len(e); i++ {
		c := e[i]
		switch c {
		case '*', '/':
		case '+', '-':
			if p := e[i-1]; p == 'e' || p == 'E' {
				continue
			}
		default:
			continue
		}
		op, _ := ParseOp(e[i : i+1])
		return parseOperands(op, e[:i], e[i+1:])
	}
	return Request{}, Errorf(CodeSyntax, "syntax error: want NUMBER OP NUMBER or OP NUMBER NUMBER")
}

func parseWordOp(s string) (Op, bool) {
	if len(s) != 3 {
		return 0, false
	}
	op, ok := ParseOp(strings.ToLower(s))
	return op, ok && op.String() == strings.ToLower(s)
}

func parseOperands(op Op, a, b string) (Request, error) {
	x, err := ParseNumber(a)
	if err != nil {
		return Request{}, err
	}
	y, err := ParseNumber(b)
	if err != nil {
		return Request{}, err
	}
	return Request{Op: op, A: x, B: y}, nil
}

// ParseNumber reads one operand: an int64 when written as an integer, a
// float64 otherwise. An integer beyond int64 is an overflow error rather than
// a silently rounded float.
func ParseNumber(s string) (Number, error) {
	if s == "" {
		return Number{}, Errorf(CodeSyntax, "syntax error: missing number")
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return IntNumber(i), nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return Number{}, Errorf(CodeOverflow, "integer overflow: %s does not fit in int64", s)
	}
	if strings.ContainsAny(s, "xX_") {
		// ParseFloat takes hex floats and underscores; a person typing
		// "0x10" means something else, so refuse rather than guess.
		return Number{}, Errorf(CodeSyntax, "syntax error: %q is not a number", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return Number{}, Errorf(CodeSyntax, "syntax error: %q is not a number", s)
	}
	// A float literal out of range parses to ±Inf with ErrRange: keep the
	// infinity and let the calculation refuse it with its own error.
	return FloatNumber(f), nil
}

// AppendText appends the text form of an expression: "6 * 7".
func (r Request) AppendText(dst []byte) []byte {
	dst = r.A.AppendText(dst)
	dst = append(dst, ' ')
	dst = append(dst, r.Op.Symbol()...)
	dst = append(dst, ' ')
	return r.B.AppendText(dst)
}

func (r Request) String() string { return string(r.AppendText(nil)) }

// AppendTextReply appends the text answer to a request: "42\n", or
// "error: division by zero\n".
func AppendTextReply(dst []byte, r Reply) []byte {
	if r.Err != nil {
		return AppendTextError(dst, r.Err)
	}
	dst = r.Result.AppendText(dst)
	return append(dst, '\n')
}

// AppendTextError appends "error: MESSAGE\n".
func AppendTextError(dst []byte, err *Error) []byte {
	dst = append(dst, "error: "...)
	dst = append(dst, err.Message...)
	return append(dst, '\n')
}
