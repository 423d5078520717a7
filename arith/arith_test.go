package arith

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/discal/discal/codec"
)

var (
	I = codec.IntNumber
	F = codec.FloatNumber
)

func TestEval(t *testing.T) {
	tests := []struct {
		name string
		op   codec.Op
		a, b codec.Number
		want codec.Number
		err  error
	}{
		{"add", codec.OpAdd, I(2), I(3), I(5), nil},
		{"sub negative", codec.OpSub, I(2), I(3), I(-1), nil},
		{"mul", codec.OpMul, I(6), I(7), I(42), nil},
		{"div exact is int", codec.OpDiv, I(42), I(6), I(7), nil},
		{"div inexact is float", codec.OpDiv, I(7), I(2), F(3.5), nil},
		{"div negative inexact", codec.OpDiv, I(-7), I(2), F(-3.5), nil},
		{"div by zero int", codec.OpDiv, I(1), I(0), codec.Number{}, codec.ErrDivByZero},
		{"zero div by zero", codec.OpDiv, I(0), I(0), codec.Number{}, codec.ErrDivByZero},
		{"div by zero float", codec.OpDiv, F(1), F(0), codec.Number{}, codec.ErrDivByZero},
		{"div by negative zero", codec.OpDiv, F(1), F(math.Copysign(0, -1)), codec.Number{}, codec.ErrDivByZero},
		{"add overflow", codec.OpAdd, I(math.MaxInt64), I(1), codec.Number{}, codec.ErrOverflow},
		{"add to max", codec.OpAdd, I(math.MaxInt64 - 1), I(1), I(math.MaxInt64), nil},
		{"add underflow", codec.OpAdd, I(math.MinInt64), I(-1), codec.Number{}, codec.ErrOverflow},
		{"sub overflow", codec.OpSub, I(math.MinInt64), I(1), codec.Number{}, codec.ErrOverflow},
		{"sub min from zero", codec.OpSub, I(0), I(math.MinInt64), codec.Number{}, codec.ErrOverflow},
		{"sub min from -1", codec.OpSub, I(-1), I(math.MinInt64), I(math.MaxInt64), nil},
		{"mul overflow", codec.OpMul, I(1 << 32), I(1 << 31), codec.Number{}, codec.ErrOverflow},
		{"mul to min", codec.OpMul, I(1 << 32), I(-(1 << 31)), I(math.MinInt64), nil},
		{"mul min by -1", codec.OpMul, I(math.MinInt64), I(-1), codec.Number{}, codec.ErrOverflow},
		{"mul min by 1", codec.OpMul, I(math.MinInt64), I(1), I(math.MinInt64), nil},
		{"div min by -1", codec.OpDiv, I(math.MinInt64), I(-1), codec.Number{}, codec.ErrOverflow},
		{"float add", codec.OpAdd, F(0.5), I(2), F(2.5), nil},
		// float64(a)/float64(b) rounds a first and gives 1.2434639037517414e+17.
		{"big inexact division rounds once", codec.OpDiv, I(5471241176507662746), I(44), F(1.2434639037517416e+17), nil},
		{"float integral stays float", codec.OpMul, F(1.5), I(2), F(3), nil},
		{"float overflow", codec.OpMul, F(1e300), F(1e300), codec.Number{}, codec.ErrNotFinite},
		{"NaN operand", codec.OpAdd, F(math.NaN()), I(1), codec.Number{}, codec.ErrNaN},
		{"NaN second operand", codec.OpAdd, I(1), F(math.NaN()), codec.Number{}, codec.ErrNaN},
		{"infinite operand", codec.OpSub, F(math.Inf(-1)), I(1), codec.Number{}, codec.ErrInfinite},
		{"unknown op", codec.Op(9), I(1), I(1), codec.Number{}, codec.ErrUnknownOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Eval(tt.op, tt.a, tt.b)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Eval(%v %v %v) error = %v, want %v", tt.a, tt.op, tt.b, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Eval(%v %v %v) error = %v", tt.a, tt.op, tt.b, err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("Eval(%v %v %v) = %#v, want %#v", tt.a, tt.op, tt.b, got, tt.want)
			}
		})
	}
}

// TestIntOverflowExact checks the overflow detection against math/big on
// random operands biased towards the edges of int64.
func TestIntOverflowExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	edge := []int64{0, 1, -1, 2, -2, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1,
		1 << 31, -(1 << 31), 1 << 32, 3037000499, 3037000500, -3037000500}
	pick := func() int64 {
		switch r.IntN(3) {
		case 0:
			return edge[r.IntN(len(edge))]
		case 1:
			return r.Int64() >> r.IntN(64)
		}
		return -r.Int64() >> r.IntN(64)
	}
	minI, maxI := big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	for range 200000 {
		a, b := pick(), pick()
		for _, op := range []codec.Op{codec.OpAdd, codec.OpSub, codec.OpMul} {
			want := new(big.Int)
			switch op {
			case codec.OpAdd:
				want.Add(big.NewInt(a), big.NewInt(b))
			case codec.OpSub:
				want.Sub(big.NewInt(a), big.NewInt(b))
			case codec.OpMul:
				want.Mul(big.NewInt(a), big.NewInt(b))
			}
			got, err := Eval(op, I(a), I(b))
			fits := want.Cmp(minI) >= 0 && want.Cmp(maxI) <= 0
			if fits && (err != nil || got.Int != want.Int64()) {
				t.Fatalf("%d %s %d = %v, %v; want %v", a, op.Symbol(), b, got, err, want)
			}
			if !fits && !errors.Is(err, codec.ErrOverflow) {
				t.Fatalf("%d %s %d = %v, %v; want overflow", a, op.Symbol(), b, got, err)
			}
		}
	}
}
