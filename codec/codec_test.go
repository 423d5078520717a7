package codec

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestParseHeader(t *testing.T) {
	ok := AppendHeader(nil, KindRequest, 0x0102030405060708)
	tests := []struct {
		name string
		in   []byte
		want Header
		err  error
	}{
		{"request", ok, Header{KindRequest, 0x0102030405060708}, nil},
		{"with body", append(bytes.Clone(ok), 0x80), Header{KindRequest, 0x0102030405060708}, nil},
		{"unknown kind is still a header", AppendHeader(nil, 99, 1), Header{99, 1}, nil},
		{"empty", nil, Header{}, ErrShort},
		{"short", ok[:9], Header{}, ErrShort},
		{"short text", []byte("6*7"), Header{}, ErrMagic},
		{"wrong magic", append([]byte{0xD2}, ok[1:]...), Header{}, ErrMagic},
		{"text", []byte("add 2 3\n"), Header{}, ErrMagic},
		{"too large keeps the header", append(bytes.Clone(ok), make([]byte, MaxDatagram)...),
			Header{KindRequest, 0x0102030405060708}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeader(tt.in)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("header = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSetID(t *testing.T) {
	b := AppendRequest(nil, 1, Request{Op: OpAdd, A: IntNumber(2), B: IntNumber(3)})
	SetID(b, math.MaxUint64)
	h, err := ParseHeader(b)
	if err != nil || h.ID != math.MaxUint64 || h.Kind != KindRequest {
		t.Fatalf("after SetID: %+v, %v", h, err)
	}
	if _, err := DecodeRequest(b[HeaderSize:]); err != nil {
		t.Fatalf("SetID damaged the body: %v", err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	tests := []Request{
		{OpAdd, IntNumber(2), IntNumber(3)},
		{OpSub, IntNumber(-1), IntNumber(math.MinInt64)},
		{OpMul, IntNumber(math.MaxInt64), IntNumber(0)},
		{OpDiv, FloatNumber(7.25), IntNumber(-2)},
		{OpDiv, FloatNumber(math.Inf(1)), FloatNumber(math.NaN())},
		{OpAdd, IntNumber(127), IntNumber(128)},
		{OpAdd, IntNumber(-32), IntNumber(-33)},
		// -0.0 is a constant expression, +0 in Go: negative zero needs Copysign.
		{OpAdd, IntNumber(1 << 40), FloatNumber(math.Copysign(0, -1))},
		{OpAdd, FloatNumber(0), FloatNumber(math.Copysign(0, -1))},
	}
	for _, want := range tests {
		t.Run(want.String(), func(t *testing.T) {
			b := AppendRequest(nil, 42, want)
			h, err := ParseHeader(b)
			if err != nil || h != (Header{KindRequest, 42}) {
				t.Fatalf("header %+v, %v", h, err)
			}
			got, err := DecodeRequest(b[HeaderSize:])
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if got.Op != want.Op || !got.A.Equal(want.A) || !got.B.Equal(want.B) {
				t.Fatalf("got %#v, want %#v", got, want)
			}
		})
	}
}

func mp(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRequestErrors(t *testing.T) {
	good := mp(t, map[string]any{"op": "add", "a": 1, "b": 2})
	tests := []struct {
		name string
		body []byte
		code Code
	}{
		{"empty body", nil, CodeMalformed},
		{"not a map", mp(t, []int{1, 2, 3}), CodeMalformed},
		{"nil", mp(t, nil), CodeMalformed},
		{"truncated", good[:len(good)-1], CodeMalformed},
		{"map count lies", []byte{0x8f, 0xa2, 'o', 'p'}, CodeMalformed},
		{"trailing bytes", append(bytes.Clone(good), 0xc0), CodeMalformed},
		{"missing op", mp(t, map[string]any{"a": 1, "b": 2}), CodeMissingField},
		{"missing a", mp(t, map[string]any{"op": "add", "b": 2}), CodeMissingField},
		{"missing b", mp(t, map[string]any{"op": "add", "a": 2}), CodeMissingField},
		{"empty map", mp(t, map[string]any{}), CodeMissingField},
		{"op not a string", mp(t, map[string]any{"op": 1, "a": 1, "b": 2}), CodeWrongType},
		{"a is a string", mp(t, map[string]any{"op": "add", "a": "1", "b": 2}), CodeWrongType},
		{"b is nil", mp(t, map[string]any{"op": "add", "a": 1, "b": nil}), CodeWrongType},
		{"b is bool", mp(t, map[string]any{"op": "add", "a": 1, "b": true}), CodeWrongType},
		{"unknown op", mp(t, map[string]any{"op": "pow", "a": 1, "b": 2}), CodeUnknownOp},
		{"long unknown op", mp(t, map[string]any{"op": "exponentiation-by-squaring", "a": 1, "b": 2}), CodeUnknownOp},
		{"symbol is not a wire op", mp(t, map[string]any{"op": "+", "a": 1, "b": 2}), CodeUnknownOp},
		{"uint64 beyond int64", mp(t, map[string]any{"op": "add", "a": uint64(math.MaxUint64), "b": 2}), CodeOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRequest(tt.body)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error = %v, want a *codec.Error with code %d", err, tt.code)
			}
			if e.Code != tt.code {
				t.Fatalf("code = %d (%v), want %d", e.Code, e, tt.code)
			}
			if e.Message == "" {
				t.Fatal("empty message")
			}
		})
	}
}

func TestDecodeRequestLenient(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want Request
	}{
		{"unknown keys skipped", mp(t, map[string]any{"op": "mul", "a": 6, "b": 7, "trace": []int{1, 2}, "a-very-long-unknown-key-name": 1}),
			Request{OpMul, IntNumber(6), IntNumber(7)}},
		{"float32 operand", mp(t, map[string]any{"op": "add", "a": float32(1.5), "b": uint8(2)}),
			Request{OpAdd, FloatNumber(1.5), IntNumber(2)}},
		{"uint64 within int64", mp(t, map[string]any{"op": "sub", "a": uint64(math.MaxInt64), "b": int8(-3)}),
			Request{OpSub, IntNumber(math.MaxInt64), IntNumber(-3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if got.Op != tt.want.Op || !got.A.Equal(tt.want.A) || !got.B.Equal(tt.want.B) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestReplyRoundTrip(t *testing.T) {
	tests := []Reply{
		{Result: IntNumber(42), Server: "s1"},
		{Result: FloatNumber(3.5)},
		{Result: IntNumber(math.MinInt64), Server: "a-server-name-longer-than-sixteen-bytes"},
		{Err: ErrDivByZero, Server: "s2"},
		{Err: Errorf(CodeMissingField, `missing field "b"`)},
		{Err: ErrNoServer},
	}
	for _, want := range tests {
		b := AppendReply(nil, 7, want)
		h, err := ParseHeader(b)
		if err != nil || h != (Header{KindReply, 7}) {
			t.Fatalf("header %+v, %v", h, err)
		}
		got, err := DecodeReply(b[HeaderSize:])
		if err != nil {
			t.Fatalf("DecodeReply(%+v): %v", want, err)
		}
		if want.Err != nil {
			if got.Err == nil || *got.Err != *want.Err || !errors.Is(got.Err, want.Err) {
				t.Fatalf("error = %v, want %v", got.Err, want.Err)
			}
		} else if got.Err != nil || !got.Result.Equal(want.Result) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		if got.Server != want.Server {
			t.Fatalf("server = %q, want %q", got.Server, want.Server)
		}
	}
}

func TestDecodeReplyErrors(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		code Code
	}{
		{"empty", nil, CodeMalformed},
		{"neither result nor error", mp(t, map[string]any{"server": "s1"}), CodeMissingField},
		{"result is a string", mp(t, map[string]any{"result": "42"}), CodeWrongType},
		{"code is negative", mp(t, map[string]any{"code": -1, "error": "x"}), CodeWrongType},
		{"code too big", mp(t, map[string]any{"code": 1 << 20, "error": "x"}), CodeWrongType},
		{"error not a string", mp(t, map[string]any{"code": 5, "error": 5}), CodeWrongType},
		{"truncated string", []byte{0x81, 0xa5, 'e', 'r', 'r', 'o', 'r', 0xd9, 0xff, 'x'}, CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeReply(tt.body)
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("error = %v, want code %d", err, tt.code)
			}
		})
	}
}

func TestStatusRoundTrip(t *testing.T) {
	want := Status{Server: "s3", HostCPU: 12.5, ProcCPU: 150.25, Cores: 2, InFlight: 3,
		Served: 1 << 40, Errors: 17, Dropped: 3, Uptime: 90 * time.Second, HostID: "6e19b555-c5ae-43fe-887d-8e4aa564f6fc", ProcID: "9f3c2a", HostCores: 8, Draining: true, CalcPort: 7001}
	b := AppendStatus(nil, 9, want)
	h, err := ParseHeader(b)
	if err != nil || h != (Header{KindStatusReply, 9}) {
		t.Fatalf("header %+v, %v", h, err)
	}
	got, err := DecodeStatus(b[HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	line := string(AppendStatusText(nil, got))
	for _, part := range []string{"server=s3", "host_cpu=12.5%", "proc_cpu=150.2%", "cores=2", "in_flight=3", "errors=17", "uptime=1m30s draining\n"} {
		if !bytes.Contains([]byte(line), []byte(part)) {
			t.Errorf("status line %q lacks %q", line, part)
		}
	}
	long := Status{Server: "calculator-number-one.example.internal:7001"}
	if got, err := DecodeStatus(AppendStatus(nil, 1, long)[HeaderSize:]); err != nil || got.Server != long.Server {
		t.Fatalf("long server name: %+v, %v", got, err)
	}
	if _, err := DecodeStatus(mp(t, map[string]any{"cores": "two"})); err == nil {
		t.Fatal("status with a string for cores decoded")
	}
	q := AppendStatusQuery(nil, 5)
	if h, err := ParseHeader(q); err != nil || h != (Header{KindStatusQuery, 5}) || len(q) != StatusQuerySize {
		t.Fatalf("status query %x: %+v, %v", q, h, err)
	}
}

func TestNumberText(t *testing.T) {
	tests := []struct {
		n    Number
		want string
	}{
		{IntNumber(42), "42"},
		{IntNumber(math.MinInt64), "-9223372036854775808"},
		{FloatNumber(3.5), "3.5"},
		{FloatNumber(3), "3"},
		{FloatNumber(0.30000000000000004), "0.30000000000000004"},
		{FloatNumber(1e6), "1000000"},
		{FloatNumber(1e21), "1e+21"},
		{FloatNumber(1e19), "1e+19"},
		{FloatNumber(123456789012345.5), "123456789012345.5"},
		{FloatNumber(1e15), "1e+15"},
		{FloatNumber(-2.5e-7), "-2.5e-07"},
		{FloatNumber(0), "0"},
		{FloatNumber(math.Copysign(0, -1)), "-0"},
		{FloatNumber(5), "5"}, // a float with an integer value has no fraction
		{FloatNumber(1e-6), "0.000001"},
		{FloatNumber(9.99e-7), "9.99e-07"},
		{FloatNumber(999999999999999.9), "999999999999999.9"},
	}
	for _, tt := range tests {
		if got := tt.n.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestParseExpr(t *testing.T) {
	tests := []struct {
		in   string
		want Request
		code Code
	}{
		{"6 * 7", Request{OpMul, IntNumber(6), IntNumber(7)}, 0},
		{"6 * 7\n", Request{OpMul, IntNumber(6), IntNumber(7)}, 0},
		{"7/2", Request{OpDiv, IntNumber(7), IntNumber(2)}, 0},
		{"add 2 3", Request{OpAdd, IntNumber(2), IntNumber(3)}, 0},
		{"ADD 2 3\r\n", Request{OpAdd, IntNumber(2), IntNumber(3)}, 0},
		{"div 1 0", Request{OpDiv, IntNumber(1), IntNumber(0)}, 0},
		{"-3 - -2", Request{OpSub, IntNumber(-3), IntNumber(-2)}, 0},
		{"-3--2", Request{OpSub, IntNumber(-3), IntNumber(-2)}, 0},
		{"2 +3", Request{OpAdd, IntNumber(2), IntNumber(3)}, 0},
		{"1.5e3 + 1", Request{OpAdd, FloatNumber(1500), IntNumber(1)}, 0},
		{"1e-3*2", Request{OpMul, FloatNumber(0.001), IntNumber(2)}, 0},
		{"+4 / .5", Request{OpDiv, IntNumber(4), FloatNumber(0.5)}, 0},
		{"\t9223372036854775807 + 0 ", Request{OpAdd, IntNumber(math.MaxInt64), IntNumber(0)}, 0},
		{"nan + 1", Request{OpAdd, FloatNumber(math.NaN()), IntNumber(1)}, 0},
		{"1e999 * 1", Request{OpMul, FloatNumber(math.Inf(1)), IntNumber(1)}, 0},
		{"", Request{}, CodeSyntax},
		{"   \n", Request{}, CodeSyntax},
		{"2 3", Request{}, CodeSyntax},
		{"2 +", Request{}, CodeSyntax},
		{"* 2", Request{}, CodeSyntax},
		{"two + 3", Request{}, CodeSyntax},
		{"0x10 + 1", Request{}, CodeSyntax},
		{"1_000 + 1", Request{}, CodeSyntax},
		{"add 2", Request{}, CodeSyntax},
		{"add 2 3 4", Request{}, CodeSyntax},
		{"pow 2 3", Request{}, CodeSyntax},
		{"99999999999999999999 + 1", Request{}, CodeOverflow},
		{"1 2 + 3", Request{}, CodeSyntax},
		{"1 000 000 * 2", Request{}, CodeSyntax},
		{"2 e 3 + 1", Request{}, CodeSyntax},
		{"1 + 2\n3", Request{}, CodeSyntax},
		{"1 + 2\n\n", Request{OpAdd, IntNumber(1), IntNumber(2)}, 0},
		{"1.2.3 + 1", Request{}, CodeSyntax},
		{"- 3 + 1", Request{}, CodeSyntax},
		{"3 % 2", Request{}, CodeSyntax},
		{"add -2 +3", Request{OpAdd, IntNumber(-2), IntNumber(3)}, 0},
		{"-inf * 2", Request{OpMul, FloatNumber(math.Inf(-1)), IntNumber(2)}, 0},
		{"5 -inf", Request{OpSub, IntNumber(5), FloatNumber(math.Inf(1))}, 0},
		{"1e19*0", Request{OpMul, FloatNumber(1e19), IntNumber(0)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseExpr(tt.in)
			if tt.code != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.code {
					t.Fatalf("ParseExpr(%q) = %v, %v; want code %d", tt.in, got, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseExpr(%q): %v", tt.in, err)
			}
			if got.Op != tt.want.Op || !got.A.Equal(tt.want.A) || !got.B.Equal(tt.want.B) {
				t.Fatalf("ParseExpr(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestIsText(t *testing.T) {
	tests := []struct {
		in   []byte
		want bool
	}{
		{[]byte("6 * 7\n"), true},
		{[]byte("status\r\n"), true},
		{[]byte("\tadd 1 2"), true},
		{nil, false},
		{[]byte{Magic, 1}, false},
		{[]byte("6 * 7\x00"), false},
		{[]byte("caf\xc3\xa9"), false},
	}
	for _, tt := range tests {
		if got := IsText(tt.in); got != tt.want {
			t.Errorf("IsText(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestIsTextReply(t *testing.T) {
	for in, want := range map[string]bool{"error: division by zero\n": true, "ERROR x": true, " error": true,
		"42\n": false, "errors": true, "err": false, "6 * 7": false, "ok: burn 0.5\n": true, "OK": true, "o": false} {
		if got := IsTextReply([]byte(in)); got != want {
			t.Errorf("IsTextReply(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTextReply(t *testing.T) {
	tests := []struct {
		r    Reply
		want string
	}{
		{Reply{Result: IntNumber(42)}, "42\n"},
		{Reply{Result: FloatNumber(3.5)}, "3.5\n"},
		{Reply{Err: ErrDivByZero}, "error: division by zero\n"},
	}
	for _, tt := range tests {
		if got := string(AppendTextReply(nil, tt.r)); got != tt.want {
			t.Errorf("AppendTextReply(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// TestShortFormsFit: the short form of every error, in either form, fits
// within MaxAmplification of the smallest request that gets an answer.
func TestShortFormsFit(t *testing.T) {
	for code, e := range sentinels {
		long := Errorf(code, "%s: %s", e.Message, strings.Repeat("x", 200))
		if got := long.Short(); got.Code != code || got.Message != e.Message {
			t.Errorf("Short of code %d = %+v", code, got)
		}
		if n := len(AppendTextError(nil, long.Short())); n > MaxAmplification*MinTextRequest {
			t.Errorf("text short form of code %d is %d bytes", code, n)
		}
		if n := len(AppendReply(nil, 1, Reply{Err: long.Short()})); n > MaxAmplification*HeaderSize {
			t.Errorf("binary short form of code %d is %d bytes", code, n)
		}
	}
	if (&Error{Code: 999, Message: "long story"}).Short().Message != "error" {
		t.Error("an unknown code's short form")
	}
}

func TestErrorIs(t *testing.T) {
	wire := &Error{Code: CodeDivByZero, Message: "something else"}
	if !errors.Is(wire, ErrDivByZero) {
		t.Fatal("a wire error does not match its sentinel by code")
	}
	if errors.Is(wire, ErrOverflow) {
		t.Fatal("a wire error matches another code's sentinel")
	}
	if !CodeTimeout.Transient() || !CodeNoServer.Transient() || CodeDivByZero.Transient() {
		t.Fatal("Transient is wrong")
	}
	if AsError(errors.New("boom")).Code != CodeMalformed {
		t.Fatal("AsError of a plain error is not malformed")
	}
}

func BenchmarkParseHeader(b *testing.B) {
	d := AppendRequest(nil, 1, Request{OpAdd, IntNumber(2), IntNumber(3)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	buf := make([]byte, 0, MaxDatagram)
	r := Request{OpMul, IntNumber(123456), FloatNumber(2.5)}
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRequest(buf[:0], 1, r)
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	d := AppendRequest(nil, 1, Request{OpMul, IntNumber(123456), FloatNumber(2.5)})[HeaderSize:]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReply(b *testing.B) {
	buf := make([]byte, 0, MaxDatagram)
	r := Reply{Result: IntNumber(42), Server: "s1"}
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendReply(buf[:0], 1, r)
		if _, err := DecodeReply(buf[HeaderSize:]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFixedSizes: every request has one size, and so does every result
// reply with one server name, whatever the numbers; batching relies on it.
func TestFixedSizes(t *testing.T) {
	nums := []Number{IntNumber(0), IntNumber(-1), IntNumber(math.MaxInt64), FloatNumber(0.5), FloatNumber(-1e300)}
	reqSize, repSize := -1, -1
	for _, op := range Ops {
		for _, a := range nums {
			for _, b := range nums {
				if n := len(AppendRequest(nil, 1, Request{op, a, b})); reqSize >= 0 && n != reqSize {
					t.Fatalf("request sizes %d and %d", reqSize, n)
				} else {
					reqSize = n
				}
			}
			if n := len(AppendReply(nil, 1, Reply{Result: a, Server: "s1"})); repSize >= 0 && n != repSize {
				t.Fatalf("reply sizes %d and %d", repSize, n)
			} else {
				repSize = n
			}
		}
	}
	if reqSize != RequestSize {
		t.Fatalf("requests are %d bytes, RequestSize says %d", reqSize, RequestSize)
	}
}

// TestHugeDeclaredLengthsCostNothing: values that claim to be gigabytes
// long, in fields the decoder skips, must not make it allocate. The msgpack
// library's own Skip grew its pooled buffer by a megabyte for each such
// datagram, which a flood would have turned into gigabytes.
func TestHugeDeclaredLengthsCostNothing(t *testing.T) {
	bodies := [][]byte{
		{0x84, 0xa1, 'x', 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a', 'b'},             // str32 of 4 GB, 2 bytes there
		{0x84, 0xa1, 'x', 0xc6, 0x7f, 0xff, 0xff, 0xff, 'a'},                  // bin32
		{0x84, 0xa1, 'x', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a'},            // ext32
		{0x84, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},                 // array32 of 4 billion
		{0x84, 0xa1, 'x', 0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01},           // map32
		{0x84, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'k'},                             // a huge key
		{0x81, 0xa6, 's', 'e', 'r', 'v', 'e', 'r', 0xdb, 0xff, 0xff, 0xff, 0}, // a huge name
	}
	deep := []byte{0x81, 0xa1, 'x'}
	for range 1000 {
		deep = append(deep, 0x91) // arrays in arrays
	}
	bodies = append(bodies, append(deep, 0x01))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 2000 {
		for _, b := range bodies {
			if _, err := DecodeRequest(b); err == nil {
				t.Fatalf("DecodeRequest(%x) accepted", b)
			}
			_, _ = DecodeReply(b)
			_, _ = DecodeStatus(b)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("decoding allocated %d MB", grew>>20)
	}
}

func TestJoinRoundTrip(t *testing.T) {
	for _, j := range []Join{{CalcPort: 7001, Name: "s1"}, {CalcPort: 65535}, {CalcPort: 1, Name: strings.Repeat("n", MaxName)}} {
		b := AppendJoin(nil, 9, j)
		h, err := ParseHeader(b)
		if err != nil || h != (Header{KindJoin, 9}) {
			t.Fatalf("join header %+v, %v", h, err)
		}
		got, err := DecodeJoin(b[HeaderSize:])
		if err != nil || got != j {
			t.Fatalf("join %+v decoded as %+v, %v", j, got, err)
		}
	}
	for name, body := range map[string]map[string]any{
		"no port":     {"name": "s1"},
		"port 0":      {"calc_port": 0},
		"port 70000":  {"calc_port": 70000},
		"port string": {"calc_port": "7001"},
		"negative":    {"calc_port": -1},
	} {
		b, err := msgpack.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if j, err := DecodeJoin(b); err == nil {
			t.Errorf("%s: decoded as %+v", name, j)
		}
	}
	if a := AppendJoinAck(nil, 9); len(a) != HeaderSize || a[1] != byte(KindJoinAck) {
		t.Fatalf("join ack %x", a)
	}
}
