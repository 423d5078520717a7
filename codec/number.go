package codec

import (
	"math"
	"strconv"
)

// Number is an operand or a result: an exact int64 or a float64. Which one a
// value is matters: integer arithmetic stays exact, and a reply carries an
// integer as a msgpack integer.
type Number struct {
	IsFloat bool
	Int     int64   // the value when !IsFloat
	Float   float64 // the value when IsFloat
}

// IntNumber returns an integer Number.
func IntNumber(i int64) Number { return Number{Int: i} }

// FloatNumber returns a float Number.
func FloatNumber(f float64) Number { return Number{IsFloat: true, Float: f} }

// Float64 returns the value as a float64, rounding large integers.
func (n Number) Float64() float64 {
	if n.IsFloat {
		return n.Float
	}
	return float64(n.Int)
}

// Equal reports whether n and m are the same kind and value. Floats compare
// by their bits, so that two NaNs with one payload are equal and +0 and -0
// are not.
func (n Number) Equal(m Number) bool {
	if n.IsFloat != m.IsFloat {
		return false
	}
	if n.IsFloat {
		return math.Float64bits(n.Float) == math.Float64bits(m.Float)
	}
	return n.Int == m.Int
}

// AppendText appends the value as a person writes it: "42", "3.5", "-0.25".
// Floats use the shortest form that reads back to the same value, in plain
// decimal for everyday magnitudes and with an exponent from 1e15 on, where
// a float's digits would read back as an integer (and beyond 2^63 as an
// overflow).
func (n Number) AppendText(dst []byte) []byte {
	if !n.IsFloat {
		return strconv.AppendInt(dst, n.Int, 10)
	}
	f := n.Float
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e15) {
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

func (n Number) String() string { return string(n.AppendText(nil)) }
