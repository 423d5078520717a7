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

// IsTextReply reports whether a text datagram looks like an answer rather
// than a question: an error line, or a command's confirmation ("ok: ...").
// Nothing answers one, so that a spoofed datagram cannot set two endpoints
// answering each other forever: every other answer (a number, a status
// line) is itself answered at most with an error line, which ends the
// exchange.
func IsTextReply(b []byte) bool {
	t := strings.TrimSpace(string(b))
	return (len(t) >= 5 && strings.EqualFold(t[:5], "error")) || (len(t) >= 2 && strings.EqualFold(t[:2], "ok"))
}

// TextGate is what a datagram that does not start with Magic is to a port
// that takes the text form. It is the one rule every port applies.
type TextGate int

const (
	TextQuestion TextGate = iota // a question to answer
	NotText                      // neither binary nor text: drop
	TextAnswer                   // an answer (IsTextReply): drop, or two peers could answer each other forever
	TextTooShort                 // under MinTextRequest: drop, an answer would amplify
)

// Gate classifies a datagram that does not start with Magic.
func Gate(b []byte) TextGate {
	switch {
	case !IsText(b):
		return NotText
	case IsTextReply(b):
		return TextAnswer
	case len(b) < MinTextRequest:
		return TextTooShort
	}
	return TextQuestion
}

// TextCommand returns a text datagram with surrounding space and line ends
// removed, and lower-cased: what a person typed into netcat.
func TextCommand(b []byte) string {
	return strings.ToLower(strings.TrimSpace(string(b)))
}

// ParseExpr reads an operation in the text form: infix "6 * 7", "7/2",
// "-3 - -2", "1.5e3 + 1", or prefix "add 2 3" (add, sub, mul, div). Spaces
// may surround the operator and the operands, but never split a number, and
// a datagram holds one expression: a trailing line end is fine, a second
// line is not. Operands are integers when they are written as integers and
// fit in int64, floats otherwise; "inf" and "nan" are read as floats so that
// the server can answer them with its explicit error.
func ParseExpr(s string) (Request, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Request{}, Errorf(CodeSyntax, "syntax error: empty expression")
	}
	if strings.ContainsAny(s, "\r\n") {
		return Request{}, Errorf(CodeSyntax, "syntax error: one expression per datagram")
	}
	toks, err := tokenize(s)
	if err != nil {
		return Request{}, err
	}
	switch {
	case len(toks) == 3 && toks[0].kind == tokWord:
		op, ok := parseWordOp(toks[0].text)
		if !ok {
			break
		}
		if toks[1].kind != tokNumber || toks[2].kind != tokNumber {
			return Request{}, Errorf(CodeSyntax, "syntax error: %s takes two numbers", op)
		}
		return parseOperands(op, toks[1].text, toks[2].text)
	case len(toks) == 3 && toks[1].kind == tokOp:
		if toks[0].kind != tokNumber || toks[2].kind != tokNumber {
			break
		}
		op, _ := ParseOp(toks[1].text)
		return parseOperands(op, toks[0].text, toks[2].text)
	case len(toks) >= 1 && toks[0].kind == tokWord:
		if op, ok := parseWordOp(toks[0].text); ok {
			return Request{}, Errorf(CodeSyntax, "syntax error: %s takes two numbers", op)
		}
	}
	for _, t := range toks {
		if t.kind == tokWord && !isNumberWord(t.text) {
			if _, ok := parseWordOp(t.text); !ok {
				return Request{}, Errorf(CodeSyntax, "syntax error: %q is not a number", clip(t.text))
			}
		}
	}
	return Request{}, Errorf(CodeSyntax, "syntax error: want NUMBER OP NUMBER or OP NUMBER NUMBER")
}

type tokKind int

const (
	tokNumber tokKind = iota // 42, -3, 1.5e3, .5, inf, -nan
	tokOp                    // + - * /
	tokWord                  // add, sub, ... or anything else made of letters
)

type token struct {
	kind tokKind
	text string
}

// tokenize splits an expression into numbers, operators and words. A sign
// belongs to a number when an operand is expected (at the start, after an
// operator, and anywhere in the prefix form "add -2 +3") and is an operator
// otherwise, so "-3--2" is -3, -, -2.
func tokenize(s string) ([]token, error) {
	var toks []token
	operand := true // an operand may come next
	prefix := false // the expression began with a word: only operands follow
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
			continue
		case (c == '+' || c == '-') && !operand:
			toks = append(toks, token{tokOp, s[i : i+1]})
			i++
			operand = true
			continue
		case c == '*' || c == '/':
			toks = append(toks, token{tokOp, s[i : i+1]})
			i++
			operand = true
			continue
		}
		start := i
		if c == '+' || c == '-' {
			i++ // a sign, stuck to what follows
		}
		switch {
		case i < len(s) && isLetter(s[i]):
			for i < len(s) && isLetter(s[i]) {
				i++
			}
			word := s[start:i]
			if isNumberWord(word) {
				toks = append(toks, token{tokNumber, word})
				operand = prefix
			} else {
				prefix = prefix || len(toks) == 0
				toks = append(toks, token{tokWord, word})
				operand = true
			}
		case i < len(s) && (isDigit(s[i]) || s[i] == '.'):
			i = scanNumber(s, i)
			toks = append(toks, token{tokNumber, s[start:i]})
			operand = prefix
			if i < len(s) && (isLetter(s[i]) || s[i] == '.' || s[i] == '_') {
				// "0x10", "1_000", "1.2.3": one token that is not a number.
				for i < len(s) && !strings.ContainsRune(" \t+-*/", rune(s[i])) {
					i++
				}
				return nil, Errorf(CodeSyntax, "syntax error: %q is not a number", clip(s[start:i]))
			}
		default:
			return nil, Errorf(CodeSyntax, "syntax error: unexpected %q", clip(s[start:min(i+1, len(s))]))
		}
	}
	return toks, nil
}

// scanNumber returns the end of the decimal number starting at i: digits,
// a fraction, an exponent.
func scanNumber(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			i = j
		}
	}
	return i
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// isNumberWord reports the words ParseFloat reads as numbers.
func isNumberWord(w string) bool {
	switch strings.ToLower(strings.TrimLeft(w, "+-")) {
	case "inf", "infinity", "nan":
		return true
	}
	return false
}

// clip shortens what an error message echoes, so that a reply stays small
// whatever was sent.
func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
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
		return Number{}, Errorf(CodeOverflow, "integer overflow: %s does not fit in int64", clip(s))
	}
	if strings.ContainsAny(s, "xX_") {
		// ParseFloat takes hex floats and underscores; a person typing
		// "0x10" means something else, so refuse rather than guess.
		return Number{}, Errorf(CodeSyntax, "syntax error: %q is not a number", clip(s))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return Number{}, Errorf(CodeSyntax, "syntax error: %q is not a number", clip(s))
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
