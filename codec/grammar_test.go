package codec_test

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
)

// The text form's grammar is the README's EBNF (Wire protocol, Text) and the
// rules beside it. These tests hold ParseExpr to a second implementation of
// that grammar, written from the README and sharing no code with the
// parser: a regular expression for a number and a search over every way an
// expression could split into its parts. The fuzz targets feed both the
// same inputs, mutated by the fuzzer or built from the grammar's pieces;
// their seeds live in testdata/fuzz. Run one with:
// go test -fuzz FuzzParseExprGrammar ./codec

// refNumber is the EBNF's number, in any case:
//
//	number   = [ sign ] , ( decimal | "inf" | "infinity" ) | "nan" ;
//	decimal  = ( digits , [ "." , [ digits ] ] | "." , digits ) , [ exponent ] ;
//	exponent = ( "e" | "E" ) , [ sign ] , digits ;
var (
	refNumber  = regexp.MustCompile(`^(?i:[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf|infinity)|nan)$`)
	refInteger = regexp.MustCompile(`^[+-]?[0-9]+$`) // "a decimal of digits alone is an integer"
	refOps     = map[string]codec.Op{"+": codec.OpAdd, "-": codec.OpSub, "*": codec.OpMul, "/": codec.OpDiv}
	refWordOps = map[string]codec.Op{"add": codec.OpAdd, "sub": codec.OpSub, "mul": codec.OpMul, "div": codec.OpDiv}
)

// refMaxLen bounds what the reference reads: its search is quadratic, and
// no datagram is longer than codec.MaxDatagram.
const refMaxLen = 2 * codec.MaxDatagram

// refReading is one way an expression satisfies the grammar.
type refReading struct {
	op   codec.Op
	a, b string
}

// refReadings returns every reading of s that the grammar allows.
//
//	datagram   = { blank | eol } , expression , { blank | eol } ;
//	infix      = number , { blank } , operator , { blank } , number ;
//	prefix     = word op , { blank } , number , { blank } , number ;
//
// An expression neither starts nor ends with a blank or a line end, so the
// datagram's are what trimming takes; a line end anywhere else is refused
// because no rule inside an expression allows one ("a line end may only lead
// or trail"). The rule "a sign is part of a number only where a number is
// expected" needs no code: a reading that took a sign the other way would be
// a second reading, which the tests refuse as an ambiguity.
func refReadings(s string) []refReading {
	s = strings.Trim(s, " \t\r\n")
	var out []refReading
	for _, a := range refNumbersAt(s, 0) {
		i := refBlanks(s, a)
		if i == len(s) || !strings.ContainsRune("+-*/", rune(s[i])) {
			continue
		}
		for _, b := range refNumbersAt(s, refBlanks(s, i+1)) {
			if b == len(s) {
				out = append(out, refReading{refOps[s[i:i+1]], s[:a], s[refBlanks(s, i+1):b]})
			}
		}
	}
	if len(s) < 3 {
		return out
	}
	op, ok := refWordOps[strings.ToLower(s[:3])]
	if !ok {
		return out
	}
	i := refBlanks(s, 3)
	for _, a := range refNumbersAt(s, i) {
		j := refBlanks(s, a)
		for _, b := range refNumbersAt(s, j) {
			if b == len(s) {
				out = append(out, refReading{op, s[i:a], s[j:b]})
			}
		}
	}
	return out
}

// refBlanks skips { blank } from i.
func refBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// refNumbersAt returns every end e such that s[i:e] is a number, and is not
// followed directly by a letter, a digit, a "." or a "_". The README's rule
// names the letter, the "." and the "_"; the digit is what "spaces never
// split a number" means for two numbers that touch ("add 12" is not 1 and
// 2, "add 1.23" not 1.2 and 3).
func refNumbersAt(s string, i int) []int {
	var ends []int
	for e := i + 1; e <= len(s); e++ {
		if !refNumber.MatchString(s[i:e]) {
			continue
		}
		if e < len(s) {
			c := s[e]
			if c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '.' || c == '_' {
				continue
			}
		}
		ends = append(ends, e)
	}
	return ends
}

// refValue reads a number the grammar took: digits alone are an int64
// (beyond it, code 6), anything else a float64; decimal to binary is
// strconv's, which rounds correctly, and out of range gives ±Inf or 0.
func refValue(s string) (codec.Number, codec.Code) {
	if refInteger.MatchString(s) {
		var n big.Int
		if _, ok := n.SetString(s, 10); !ok || !n.IsInt64() {
			return codec.Number{}, codec.CodeOverflow
		}
		return codec.IntNumber(n.Int64()), 0
	}
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity":
		return codec.FloatNumber(math.Inf(sign)), 0
	case "nan":
		return codec.FloatNumber(math.NaN()), 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		panic("the reference's number " + s + " is not strconv's: " + err.Error())
	}
	return codec.FloatNumber(f), 0
}

// refParse is what the grammar makes of s: a request, or the code of the
// first error (10 when the grammar refuses s, 6 when an operand, left
// first, is an integer beyond int64). It fails t if s has two readings.
func refParse(t *testing.T, s string) (codec.Request, codec.Code) {
	t.Helper()
	rs := refReadings(s)
	switch len(rs) {
	case 0:
		return codec.Request{}, codec.CodeSyntax
	case 1:
	default:
		t.Fatalf("%q is ambiguous: %+v", s, rs)
	}
	a, code := refValue(rs[0].a)
	if code != 0 {
		return codec.Request{}, code
	}
	b, code := refValue(rs[0].b)
	if code != 0 {
		return codec.Request{}, code
	}
	return codec.Request{Op: rs[0].op, A: a, B: b}, 0
}

// sameNumber is Equal, with any NaN equal to any other.
func sameNumber(x, y codec.Number) bool {
	if x.IsFloat && y.IsFloat && math.IsNaN(x.Float) && math.IsNaN(y.Float) {
		return true
	}
	return x.Equal(y)
}

// checkGrammar fails t unless ParseExpr and the reference agree on s: both
// refuse it with the same code, or both read the same operation and values.
func checkGrammar(t *testing.T, s string) {
	t.Helper()
	if len(s) > refMaxLen {
		return
	}
	got, err := codec.ParseExpr(s)
	want, code := refParse(t, s)
	if code != 0 {
		var e *codec.Error
		if !errors.As(err, &e) || e.Code != code {
			t.Fatalf("ParseExpr(%q) = %v, %v; the grammar says code %d", s, got, err, code)
		}
		if err := codec.CheckMessage(e.Message); err != nil {
			t.Fatalf("ParseExpr(%q): the message %q would be refused: %v", s, e.Message, err)
		}
		return
	}
	if err != nil || got.Op != want.Op || !sameNumber(got.A, want.A) || !sameNumber(got.B, want.B) {
		t.Fatalf("ParseExpr(%q) = %#v, %v; the grammar says %#v", s, got, err, want)
	}
}

// FuzzParseExprGrammar mutates strings.
func FuzzParseExprGrammar(f *testing.F) {
	for _, s := range []string{"6 * 7", "add 2 3", "-3--2", "1.5e3 + 1", "18446744073709551616.0 + 0",
		"addinf 1", "add 1.23", "\f6 * 7"} {
		f.Add(s)
	}
	f.Fuzz(checkGrammar)
}

// FuzzParseExprGenerated builds expressions from the grammar's pieces, and
// from pieces it refuses, as the recipe says: mutated bytes rarely make a
// valid exponent or a word operator, so this reaches what the other misses.
func FuzzParseExprGenerated(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{1, 9, 40, 200, 17, 3, 250, 99, 12})
	f.Fuzz(func(t *testing.T, recipe []byte) {
		checkGrammar(t, generate(&recipeReader{b: recipe}))
	})
}

// TestParseExprMatchesGrammar runs the generator over a fixed sample, so that
// every go test compares the parser with the grammar beyond the seeds.
func TestParseExprMatchesGrammar(t *testing.T) {
	n := 50_000
	if testing.Short() {
		n = 10_000
	}
	rng := rand.New(rand.NewPCG(16, 16))
	for range n {
		checkGrammar(t, generate(rng))
	}
}

// byteSource is where the generator takes its choices: a fuzzer's recipe or
// a seeded random source.
type byteSource interface{ IntN(n int) int }

// recipeReader hands out a recipe's bytes, then zeros.
type recipeReader struct {
	b []byte
	i int
}

func (r *recipeReader) IntN(n int) int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1]) % n
}

var (
	genSpace = []string{"", "", " ", "  ", "\t", "\n", "\r\n", "\f", "\v", "\u00a0"}
	genOp    = []string{"+", "-", "*", "/", "%", "^", "add", "sub", "MUL", "Div", "pow", "ad", "+-", "--"}
	genWord  = []string{"inf", "-inf", "+Infinity", "INF", "infinit", "infinityx", "nan", "NaN", "-nan", "+nan",
		"nanx", "e", "E5", "x", "_", ".", "-", "+", "0x10", "1_000", "add", "Sub"}
	genBig = []string{"9223372036854775807", "9223372036854775808", "18446744073709551615",
		"18446744073709551616", "99999999999999999999", "8910" + strings.Repeat("7", 300) + "238"}
)

// generate builds one expression: mostly infix or prefix from valid and
// invalid pieces, sometimes pieces in any order.
func generate(r byteSource) string {
	var b strings.Builder
	piece := func(list []string) { b.WriteString(list[r.IntN(len(list))]) }
	switch r.IntN(4) {
	case 0, 1:
		piece(genSpace)
		genNumber(&b, r)
		piece(genSpace)
		piece(genOp)
		piece(genSpace)
		genNumber(&b, r)
		piece(genSpace)
	case 2:
		piece(genSpace)
		piece(genOp)
		piece(genSpace)
		genNumber(&b, r)
		piece(genSpace)
		genNumber(&b, r)
		piece(genSpace)
	default:
		for range 1 + r.IntN(7) {
			switch r.IntN(3) {
			case 0:
				genNumber(&b, r)
			case 1:
				piece(genOp)
			default:
				piece(genSpace)
			}
		}
	}
	return b.String()
}

// genNumber writes a number, or something close to one: a sign, digits, a
// fraction, an exponent, each there or not, or a word or a huge literal.
func genNumber(b *strings.Builder, r byteSource) {
	switch r.IntN(8) {
	case 0:
		b.WriteString(genWord[r.IntN(len(genWord))])
		return
	case 1:
		b.WriteString(genBig[r.IntN(len(genBig))])
	}
	b.WriteString([]string{"", "", "-", "+"}[r.IntN(4)])
	digits := func() {
		for range r.IntN(4) {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
	}
	digits()
	if r.IntN(3) == 0 {
		b.WriteByte('.')
		digits()
	}
	if r.IntN(3) == 0 {
		b.WriteString([]string{"e", "E", "e+", "e-", "e999", "e-400"}[r.IntN(6)])
		digits()
	}
	if r.IntN(6) == 0 {
		b.WriteString([]string{".", "_", "x", "e", "inf", "1"}[r.IntN(6)])
	}
}

// TestTextAnswers: what a server answers to a text expression, parsed and
// computed as it does, for the cases issue 16 named. A point or an exponent
// makes a float whatever the digits before it, and an operand's syntax and
// values are checked in the README's order.
func TestTextAnswers(t *testing.T) {
	huge := "8910" + strings.Repeat("7", 300) + "238.e+320"
	tests := []struct{ in, want string }{
		{"18446744073709551616.0 + 0", "1.8446744073709552e+19\n"},
		{"99999999999999999999e0 + 0", "1e+20\n"},
		{"99999999999999999999. * 2", "2e+20\n"},
		{"nan * " + huge, "error: operand is NaN\n"},
		{huge + " * nan", "error: operand is infinite\n"},
		{"99999999999999999999 + 0", "error: integer overflow: 99999999999999999999 does not fit in int64\n"},
		{"99999999999999999999 + -nan", "error: syntax error: \"-nan\" is not a number\n"},
		{"addinf 1", "error: operand is infinite\n"},
		{"ADDInfinity 1", "error: operand is infinite\n"},
		{"mulnan 2", "error: operand is NaN\n"},
		{"add-2 3", "1\n"},
		{"add 1.23", "error: syntax error: add takes two numbers\n"},
		{"add inf1 2", "error: syntax error: \"inf1\" is not a number\n"},
		{"add nan.5", "error: syntax error: \"nan.5\" is not a number\n"},
		{"addinfx 1", "error: syntax error: \"addinfx\" is not a number\n"},
		{"\f6 * 7", "error: syntax error: unexpected \"\\f\"\n"},
		{"6 * 7\u00a0", "error: syntax error: unexpected \"\\xc2\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			if got := textAnswer(tt.in); got != tt.want {
				t.Fatalf("%q answers %q, want %q", tt.in, got, tt.want)
			}
			checkGrammar(t, tt.in)
		})
	}
}

// textAnswer is the line a server answers to a text expression.
func textAnswer(s string) string {
	req, err := codec.ParseExpr(s)
	if err == nil {
		var res codec.Number
		if res, err = arith.Eval(req.Op, req.A, req.B); err == nil {
			return string(codec.AppendTextReply(nil, codec.Reply{Result: res}))
		}
	}
	return string(codec.AppendTextError(nil, codec.AsError(err)))
}
