package codec

import (
	"strings"
	"testing"
)

func TestAppendBounded(t *testing.T) {
	long := Errorf(CodeUnknownOp, "unknown operation %q", strings.Repeat("x", 100))
	name := strings.Repeat("n", 80)
	tests := []struct {
		name   string
		reqLen int
		text   bool
		r      Reply
		want   Reply // what the answer decodes to
	}{
		{"result fits", RequestSize, false, Reply{Result: IntNumber(42), Server: "s1"}, Reply{Result: IntNumber(42), Server: "s1"}},
		{"error fits", RequestSize, false, Reply{Err: ErrDivByZero, Server: "s1"}, Reply{Err: ErrDivByZero, Server: "s1"}},
		{"long error shrinks", HeaderSize, false, Reply{Err: long, Server: "s1"}, Reply{Err: ErrUnknownOp}},
		{"long name dropped", HeaderSize, false, Reply{Result: IntNumber(1), Server: name}, Reply{Result: IntNumber(1)}},
		{"text error fits", 3, true, Reply{Err: ErrDivByZero}, Reply{Err: ErrDivByZero}},
		{"text error shrinks", 3, true, Reply{Err: long}, Reply{Err: ErrUnknownOp}},
		{"text result", 3, true, Reply{Result: FloatNumber(-1.2345678901234567e-300)}, Reply{Result: FloatNumber(-1.2345678901234567e-300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			out := AppendBounded(prefix, tt.reqLen, tt.text, 7, tt.r)
			if string(out[:4]) != "keep" {
				t.Fatalf("dst's bytes changed: %q", out)
			}
			out = out[4:]
			if !Fits(len(out), tt.reqLen) {
				t.Fatalf("%d bytes for a %d-byte request", len(out), tt.reqLen)
			}
			var want []byte
			if tt.text {
				want = AppendTextReply(nil, tt.want)
			} else {
				want = AppendReply(nil, 7, tt.want)
			}
			if string(out) != string(want) {
				t.Fatalf("got %q, want %q", out, want)
			}
		})
	}
	if !Fits(100, 10) || Fits(101, 10) {
		t.Fatal("Fits is not ten times")
	}
}

// FuzzAppendBounded: whatever the reply, the answer to any request that
// gets one (MinTextRequest bytes of text, a binary header) fits the bound,
// is the full answer whenever that fits, and keeps the code or result.
func FuzzAppendBounded(f *testing.F) {
	f.Add(HeaderSize, false, uint16(5), "division by zero", "s1", int64(0), false)
	f.Add(MinTextRequest, true, uint16(2), strings.Repeat("x", 200), "", int64(0), false)
	f.Add(RequestSize, false, uint16(0), "", strings.Repeat("n", 64), int64(-1), true)
	f.Fuzz(func(t *testing.T, reqLen int, text bool, code uint16, msg, server string, v int64, isErr bool) {
		min := HeaderSize
		if text {
			min = MinTextRequest
		}
		if reqLen < min || reqLen > MaxDatagram || len(msg) > MaxDatagram || len(server) > MaxDatagram {
			return
		}
		r := Reply{Result: IntNumber(v), Server: server}
		if isErr {
			r = Reply{Err: &Error{Code: Code(code), Message: msg}, Server: server}
		}
		out := AppendBounded(nil, reqLen, text, 1, r)
		if !Fits(len(out), reqLen) {
			t.Fatalf("%d bytes answer a %d-byte request: %q", len(out), reqLen, out)
		}
		full := AppendReply(nil, 1, r)
		if text {
			full = AppendTextReply(nil, r)
		}
		if Fits(len(full), reqLen) && string(out) != string(full) {
			t.Fatalf("the full answer %q fits, yet %q was sent", full, out)
		}
		if text {
			return
		}
		got, err := DecodeReply(out[HeaderSize:])
		if err != nil {
			t.Fatalf("%q does not decode: %v", out, err)
		}
		if isErr != (got.Err != nil) || (isErr && got.Err.Code != r.Err.Code) || (!isErr && !got.Result.Equal(r.Result)) {
			t.Fatalf("%+v answered as %+v", r, got)
		}
	})
}
