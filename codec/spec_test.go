package codec_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
	"github.com/vmihailenco/msgpack/v5"
)

// docs/protocol.md is the wire format's spec, for implementations that
// never read this code. These tests hold it to the code: its hexdumps, its
// table of error codes, its rule for which error wins.

// body encodes a msgpack map from key/value pairs in the order given (Go's
// maps would shuffle them), with raw []byte values written as they are.
func body(t *testing.T, kv ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	if err := e.EncodeMapLen(len(kv) / 2); err != nil {
		t.Fatal(err)
	}
	for _, v := range kv {
		var err error
		if raw, ok := v.([]byte); ok {
			_, err = b.Write(raw)
		} else {
			err = e.Encode(v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// answer is what a server answers to a request body: the decoding error,
// or the calculation's.
func answer(b []byte) (codec.Number, error) {
	r, err := codec.DecodeRequest(b)
	if err != nil {
		return codec.Number{}, err
	}
	return arith.Eval(r.Op, r.A, r.B)
}

// TestWhichErrorWins follows the spec's numbered rule.
func TestWhichErrorWins(t *testing.T) {
	bin := []byte{0xc4, 3, 'a', 'd', 'd'} // msgpack bin 8 "add"
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		body []byte
		code codec.Code
	}{
		{"wrong type before unknown op, in map order", body(t, "a", "x", "op", "pow", "b", 1), codec.CodeWrongType},
		{"unknown op before a wrong type after it", body(t, "op", "pow", "a", "x", "b", 1), codec.CodeUnknownOp},
		{"unknown op before NaN", body(t, "a", nan, "b", 1, "op", "pow"), codec.CodeUnknownOp},
		{"wrong type before missing field", body(t, "op", "add", "a", "x"), codec.CodeWrongType},
		{"nil operand is a wrong type", body(t, "op", "add", "a", nil, "b", 1), codec.CodeWrongType},
		{"op as bin is a wrong type", body(t, "op", bin, "a", 1, "b", 2), codec.CodeWrongType},
		{"missing op before missing a", body(t, "b", 1), codec.CodeMissingField},
		{"missing field before trailing bytes", append(body(t, "op", "add", "a", 1), 0xc0), codec.CodeMissingField},
		{"trailing bytes before NaN", append(body(t, "op", "add", "a", nan, "b", 1), 0xc0), codec.CodeMalformed},
		{"first operand first", body(t, "op", "add", "b", nan, "a", inf), codec.CodeInfinite},
		{"NaN before division by zero", body(t, "op", "div", "a", nan, "b", 0), codec.CodeNaN},
		{"overflow of an operand before division by zero", body(t, "op", "div", "a", uint64(math.MaxUint64), "b", 0), codec.CodeOverflow},
		{"MinInt64 / 0 is a division by zero", body(t, "op", "div", "a", int64(math.MinInt64), "b", 0), codec.CodeDivByZero},
		{"float division by zero", body(t, "op", "div", "a", 0.0, "b", 0.0), codec.CodeDivByZero},
		{"float result not finite", body(t, "op", "mul", "a", 1e308, "b", 10), codec.CodeNotFinite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := answer(tt.body)
			var e *codec.Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("answered %v, want code %d", err, tt.code)
			}
		})
	}
}

// TestLenientBodies: what the spec says a decoder takes.
func TestLenientBodies(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want codec.Number
	}{
		{"a duplicate key: the last wins", body(t, "op", "add", "a", 1, "b", 2, "a", 40), codec.IntNumber(42)},
		{"a duplicate op: the last wins", body(t, "op", "sub", "a", 6, "b", 7, "op", "mul"), codec.IntNumber(42)},
		{"a key that is not a string is skipped", body(t, 1, "x", "op", "add", "a", 40, "b", 2), codec.IntNumber(42)},
		{"small number encodings", body(t, "op", "mul", "a", int8(6), "b", uint16(7)), codec.IntNumber(42)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := answer(tt.body)
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("answered %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// readme returns the text of the spec, docs/protocol.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readmeKey is the key of the spec's sealed example: the bytes 0 to 31.
func readmeKey() []byte {
	key := make([]byte, codec.MinKeySize)
	for i := range key {
		key[i] = byte(i)
	}
	return key
}

// TestREADMEHexdumps: every hexdump in the spec is, byte for byte, what
// the encoders write for the example it describes.
func TestREADMEHexdumps(t *testing.T) {
	want := [][]byte{
		codec.AppendRequest(nil, 42, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)}),
		codec.AppendReply(nil, 42, codec.Reply{Result: codec.IntNumber(42), Server: "s1"}),
		codec.AppendReply(nil, 43, codec.Reply{Err: codec.ErrDivByZero, Server: "s1"}),
		codec.Seal(codec.AppendControl(nil, 44, codec.Control{Cmd: codec.CmdDrain}), readmeKey(),
			time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)),
		codec.AppendControlReply(nil, 44, codec.Control{Cmd: codec.CmdDrain}),
	}
	line := regexp.MustCompile(`^([0-9a-f]{8})  ((?:[0-9a-f]{2} {1,2}){1,16})\s*\|`)
	var dumps [][]byte
	var cur []byte
	sc := bufio.NewScanner(strings.NewReader(readme(t)))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			if cur != nil {
				dumps, cur = append(dumps, cur), nil
			}
			continue
		}
		if off, _ := strconv.ParseInt(m[1], 16, 64); int(off) != len(cur) {
			t.Fatalf("hexdump line %q at offset %d", sc.Text(), len(cur))
		}
		b, err := hex.DecodeString(strings.ReplaceAll(m[2], " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		cur = append(cur, b...)
	}
	if len(dumps) != len(want) {
		t.Fatalf("docs/protocol.md has %d hexdumps, want %d", len(dumps), len(want))
	}
	for i := range want {
		if !bytes.Equal(dumps[i], want[i]) {
			t.Errorf("hexdump %d:\n%x\nthe encoder writes\n%x", i, dumps[i], want[i])
		}
	}
}

// TestREADMEErrorTable: the table's codes and short messages are the
// codec's.
func TestREADMEErrorTable(t *testing.T) {
	row := regexp.MustCompile(`(?m)^\| *(\d+) \| ([a-zA-Z ]+) \| `)
	rows := row.FindAllStringSubmatch(readme(t), -1)
	if len(rows) != 15 {
		t.Fatalf("%d rows in the error table, want 15", len(rows))
	}
	for _, r := range rows {
		code, _ := strconv.Atoi(r[1])
		if got := (&codec.Error{Code: codec.Code(code)}).Short().Message; got != r[2] {
			t.Errorf("code %d: docs/protocol.md says %q, the codec %q", code, r[2], got)
		}
	}
}

// TestREADMEGrammar: the examples beside the spec's grammar.
func TestREADMEGrammar(t *testing.T) {
	i, f := codec.IntNumber, codec.FloatNumber
	accepted := []struct {
		in   string
		want codec.Request
	}{
		{"+5 - 1", codec.Request{Op: codec.OpSub, A: i(5), B: i(1)}},
		{".5 * 2", codec.Request{Op: codec.OpMul, A: f(0.5), B: i(2)}},
		{"1. * 2", codec.Request{Op: codec.OpMul, A: f(1), B: i(2)}},
		{"1E3 / 2", codec.Request{Op: codec.OpDiv, A: f(1000), B: i(2)}},
		{"ADD 2 3", codec.Request{Op: codec.OpAdd, A: i(2), B: i(3)}},
		{"add -2 +3", codec.Request{Op: codec.OpAdd, A: i(-2), B: i(3)}},
		{"2 +3", codec.Request{Op: codec.OpAdd, A: i(2), B: i(3)}},
		{"-3--2", codec.Request{Op: codec.OpSub, A: i(-3), B: i(-2)}},
		{"inf + 1", codec.Request{Op: codec.OpAdd, A: f(math.Inf(1)), B: i(1)}},
		{"nan * 2", codec.Request{Op: codec.OpMul, A: f(math.NaN()), B: i(2)}},
		{"-Infinity * 2", codec.Request{Op: codec.OpMul, A: f(math.Inf(-1)), B: i(2)}},
		{"6*7\r\n", codec.Request{Op: codec.OpMul, A: i(6), B: i(7)}},
		{"1e999 * 1", codec.Request{Op: codec.OpMul, A: f(math.Inf(1)), B: i(1)}},
	}
	for _, tt := range accepted {
		got, err := codec.ParseExpr(tt.in)
		if err != nil || got.Op != tt.want.Op || got.A.IsFloat != tt.want.A.IsFloat || got.B.IsFloat != tt.want.B.IsFloat ||
			got.String() != tt.want.String() {
			t.Errorf("ParseExpr(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"0x10 + 1", "1_000 + 1", "1 + 2 + 3", "1 000 + 1", "- 3 + 1", "-nan + 1",
		"6 * 7\n8 * 9", "1e + 1", "1.2.3 + 1", ". + 1", "2 add 3"} {
		_, err := codec.ParseExpr(in)
		var e *codec.Error
		if !errors.As(err, &e) || e.Code != codec.CodeSyntax {
			t.Errorf("ParseExpr(%q) = %v, want code 10", in, err)
		}
	}
	if _, err := codec.ParseExpr("99999999999999999999 + 1"); !errors.Is(err, codec.ErrOverflow) {
		t.Errorf("an integer beyond int64: %v, want code 6", err)
	}
}
