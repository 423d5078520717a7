package flood

import (
	"math/rand/v2"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
)

// opGen draws random operations and knows their answers. The mix is mostly
// everyday integers, with floats, big integers that overflow, and the odd
// division by zero, so that the checks cover every kind of answer.
type opGen struct{ r *rand.Rand }

func newOpGen(seed, stream uint64) opGen {
	return opGen{r: rand.New(rand.NewPCG(seed, stream))}
}

func (g opGen) number() codec.Number {
	switch x := g.r.IntN(100); {
	case x < 10:
		return codec.FloatNumber((g.r.Float64() - 0.5) * 2e6)
	case x < 13:
		return codec.IntNumber(g.r.Int64() - 1<<62)
	case x < 16:
		return codec.IntNumber(0)
	default:
		return codec.IntNumber(g.r.Int64N(2_000_001) - 1_000_000)
	}
}

// next returns a request and the answer the server must give: a result,
// or the code of the error.
func (g opGen) next() (codec.Request, codec.Number, codec.Code) {
	req := codec.Request{Op: codec.Ops[g.r.IntN(len(codec.Ops))], A: g.number(), B: g.number()}
	want, err := arith.Eval(req.Op, req.A, req.B)
	if err != nil {
		return req, codec.Number{}, codec.AsError(err).Code
	}
	return req, want, 0
}
