// Package arith is the arithmetic that discal's servers perform, kept apart
// so that clients and tests can compute the expected answer locally.
//
// Integers stay exact: two int64 operands give an int64 result, and a result
// that does not fit is an error, never a silent wrap. An integer division
// that divides exactly gives an integer, otherwise a float. Any float operand
// makes the operation a float64 one. NaN and infinite operands, division by
// zero and a float result that overflows are each their own error.
package arith

import (
	"math"
	"math/big"
	"math/bits"

	"github.com/discal/discal/codec"
)

// Eval computes a op b. Its errors are the reply errors of package codec.
func Eval(op codec.Op, a, b codec.Number) (codec.Number, error) {
	if err := checkOperand(a); err != nil {
		return codec.Number{}, err
	}
	if err := checkOperand(b); err != nil {
		return codec.Number{}, err
	}
	if !a.IsFloat && !b.IsFloat {
		return evalInt(op, a.Int, b.Int)
	}
	return evalFloat(op, a.Float64(), b.Float64())
}

func checkOperand(n codec.Number) error {
	switch {
	case !n.IsFloat:
		return nil
	case math.IsNaN(n.Float):
		return codec.ErrNaN
	case math.IsInf(n.Float, 0):
		return codec.ErrInfinite
	}
	return nil
}

func evalInt(op codec.Op, a, b int64) (codec.Number, error) {
	switch op {
	case codec.OpAdd:
		s := a + b
		// Overflow happened iff both operands have the sign the sum lacks.
		if (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0) {
			return codec.Number{}, codec.ErrOverflow
		}
		return codec.IntNumber(s), nil
	case codec.OpSub:
		d := a - b
		if (a >= 0) != (b >= 0) && (d >= 0) != (a >= 0) {
			return codec.Number{}, codec.ErrOverflow
		}
		return codec.IntNumber(d), nil
	case codec.OpMul:
		p, ok := mul64(a, b)
		if !ok {
			return codec.Number{}, codec.ErrOverflow
		}
		return codec.IntNumber(p), nil
	case codec.OpDiv:
		if b == 0 {
			return codec.Number{}, codec.ErrDivByZero
		}
		if a == math.MinInt64 && b == -1 {
			return codec.Number{}, codec.ErrOverflow
		}
		if a%b == 0 {
			return codec.IntNumber(a / b), nil
		}
		return codec.FloatNumber(quotient(a, b)), nil
	}
	return codec.Number{}, codec.ErrUnknownOp
}

// quotient is a/b correctly rounded to float64. Below 2^53 both operands
// convert exactly and one division rounds once; beyond, converting would
// round first, so the exact fraction is rounded instead.
func quotient(a, b int64) float64 {
	const exact = 1 << 53
	if a > -exact && a < exact && b > -exact && b < exact {
		return float64(a) / float64(b)
	}
	f, _ := new(big.Rat).SetFrac(big.NewInt(a), big.NewInt(b)).Float64()
	return f
}

// mul64 multiplies with an exact overflow check: the magnitudes' 128-bit
// product must fit in the signed range of the result's sign.
func mul64(a, b int64) (int64, bool) {
	neg := (a < 0) != (b < 0)
	hi, lo := bits.Mul64(abs(a), abs(b))
	if hi != 0 {
		return 0, false
	}
	if neg {
		if lo > 1<<63 {
			return 0, false
		}
		return int64(-lo), true // -(1<<63) wraps to MinInt64, which is right
	}
	if lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

func abs(x int64) uint64 {
	if x < 0 {
		return uint64(-x) // MinInt64 wraps to 1<<63, its true magnitude
	}
	return uint64(x)
}

func evalFloat(op codec.Op, a, b float64) (codec.Number, error) {
	var r float64
	switch op {
	case codec.OpAdd:
		r = a + b
	case codec.OpSub:
		r = a - b
	case codec.OpMul:
		r = a * b
	case codec.OpDiv:
		if b == 0 {
			return codec.Number{}, codec.ErrDivByZero
		}
		r = a / b
	default:
		return codec.Number{}, codec.ErrUnknownOp
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return codec.Number{}, codec.ErrNotFinite
	}
	return codec.FloatNumber(r), nil
}
