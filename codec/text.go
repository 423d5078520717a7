package codec

import (
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
// line is not. An operand written with digits alone is an integer, and an
// overflow error when it does not fit in int64; one with a point or an
// exponent is a float, whatever its size. "inf" and "nan" are read as floats
// so that the server can answer them with its explicit error. The grammar is
// the README's (Wire protocol, Text); the whole expression is checked against
// it before any operand's value is, so a syntax error wins over an overflow.
func ParseExpr(s string) (Request, error) {
	// Only the grammar's blanks and line ends: strings.TrimSpace would also
	// take a form feed or a non-breaking space, which the grammar refuses.
	s = strings.Trim(s, " \t\r\n")
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
	tokNumber tokKind = iota // 42, -3, 1.5e3, .5, inf, -nan (refused later)
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
// otherwise, so "-3--2" is -3, -, -2. A number runs as far as it can and is
// never followed directly by a letter, a digit, a "." or a "_": "0x10",
// "1_000", "1.2.3" and "inf1" are one token each that is not a number.
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
		case (c == '+' || c == '-') && !operand, c == '*' || c == '/':
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
			toks = appendWord(toks, s[start:i])
			prefix = prefix || toks[0].kind == tokWord
		case i < len(s) && (isDigit(s[i]) || s[i] == '.'):
			i = scanNumber(s, i)
			toks = append(toks, token{tokNumber, s[start:i]})
		default:
			return nil, Errorf(CodeSyntax, "syntax error: unexpected %q", clip(s[start:min(i+1, len(s))]))
		}
		last := toks[len(toks)-1]
		operand = last.kind == tokWord || prefix
		if last.kind == tokNumber && i < len(s) && (isLetter(s[i]) || isDigit(s[i]) || s[i] == '.' || s[i] == '_') {
			start = i - len(last.text)
			for i < len(s) && !strings.ContainsRune(" \t+-*/", rune(s[i])) {
				i++
			}
			return nil, Errorf(CodeSyntax, "syntax error: %q is not a number", clip(s[start:i]))
		}
	}
	return toks, nil
}

// appendWord appends a run of letters (with the sign before it, if any): a
// number word, a word operator, or a word that is neither. The grammar lets
// a word operator's first number follow it directly, so "addinf 1" is the
// word "add" and the number "inf" (as "add-2 3" and "add.5 1" are), not the
// word "addinf".
func appendWord(toks []token, word string) []token {
	switch {
	case isNumberWord(word):
		return append(toks, token{tokNumber, word})
	case len(toks) == 0 && len(word) > 3 && isNumberWord(word[3:]) && word[3] != '+' && word[3] != '-':
		if _, ok := parseWordOp(word[:3]); ok {
			return append(toks, token{tokWord, word[:3]}, token{tokNumber, word[3:]})
		}
	}
	return append(toks, token{tokWord, word})
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

// isNumberWord reports the words that may stand for a number: "inf",
// "infinity" and "nan", in any case, with a sign. "-nan" is one of them so
// that it is refused as a number ("NaN has no sign") rather than as a word.
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

// parseOperands checks both operands' syntax before reading either's value,
// so that "1e99999999999999999999 + -nan" is a syntax error (the grammar
// refuses it whole) and not the first operand's overflow.
func parseOperands(op Op, a, b string) (Request, error) {
	for _, s := range []string{a, b} {
		if numberKind(s) == notNumber {
			return Request{}, Errorf(CodeSyntax, "syntax error: %q is not a number", clip(s))
		}
	}
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

type kind int

const (
	notNumber kind = iota
	integerNumber
	floatNumber
)

// numberKind classifies s by the README's grammar: digits alone (with a
// sign) are an integer; a decimal with a point or an exponent, "inf",
// "infinity" or "nan" (in any case; "nan" without a sign) is a float;
// anything else is not a number. Hex, digit separators and the other forms
// strconv takes are not numbers here.
func numberKind(s string) kind {
	body := s
	if body != "" && (body[0] == '+' || body[0] == '-') {
		body = body[1:]
	}
	switch strings.ToLower(body) {
	case "inf", "infinity":
		return floatNumber
	case "nan":
		if body == s {
			return floatNumber
		}
		return notNumber
	}
	// A mantissa needs a digit: "." and ".e5" are not numbers.
	if body == "" || !(isDigit(body[0]) || (len(body) > 1 && body[0] == '.' && isDigit(body[1]))) ||
		scanNumber(body, 0) != len(body) {
		return notNumber
	}
	if strings.IndexFunc(body, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return floatNumber
	}
	return integerNumber
}

// ParseNumber reads one operand as the README's grammar writes it: an int64
// when written with digits alone, a float64 when written with a point or an
// exponent (however many digits come before them), or as inf, infinity or
// nan. An integer beyond int64 is an overflow error rather than a silently
// rounded float.
func ParseNumber(s string) (Number, error) {
	switch numberKind(s) {
	case integerNumber:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			// The syntax is checked: the only failure left is the range.
			return Number{}, Errorf(CodeOverflow, "integer overflow: %s does not fit in int64", clip(s))
		}
		return IntNumber(i), nil
	case floatNumber:
		// A float literal out of range parses to ±Inf with ErrRange: keep
		// the infinity and let the calculation refuse it with its own error.
		f, _ := strconv.ParseFloat(s, 64)
		return FloatNumber(f), nil
	}
	if s == "" {
		return Number{}, Errorf(CodeSyntax, "syntax error: missing number")
	}
	return Number{}, Errorf(CodeSyntax, "syntax error: %q is not a number", clip(s))
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
