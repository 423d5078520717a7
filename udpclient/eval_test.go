package udpclient

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/discal/discal/codec"
)

// TestEval: an expression in the text form is parsed here and computed by
// the peer; one that does not parse is refused with the parser's error and
// never sent.
func TestEval(t *testing.T) {
	p := newPeer(t, nil)
	c, err := Dial(p.addr(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		expr string
		want codec.Number
		code codec.Code // 0: want is the result
		sent bool
	}{
		{"6 * 7", codec.IntNumber(42), 0, true},
		{"add 2 3\n", codec.IntNumber(5), 0, true},
		{"7/2", codec.FloatNumber(3.5), 0, true},
		{"18446744073709551616.0 + 0", codec.FloatNumber(math.Exp2(64)), 0, true},
		{"1 / 0", codec.Number{}, codec.CodeDivByZero, true},
		{"nan * 2", codec.Number{}, codec.CodeNaN, true},
		{"6 *", codec.Number{}, codec.CodeSyntax, false},
		{"1 + 2 + 3", codec.Number{}, codec.CodeSyntax, false},
		{"99999999999999999999 + 1", codec.Number{}, codec.CodeOverflow, false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			before := p.total()
			got, err := c.Eval(context.Background(), tt.expr)
			var e *codec.Error
			switch {
			case tt.code == 0 && (err != nil || !got.Equal(tt.want)):
				t.Fatalf("Eval(%q) = %v, %v; want %v", tt.expr, got, err, tt.want)
			case tt.code != 0 && (!errors.As(err, &e) || e.Code != tt.code):
				t.Fatalf("Eval(%q) = %v, %v; want code %d", tt.expr, got, err, tt.code)
			}
			if sent := p.total() > before; sent != tt.sent {
				t.Errorf("Eval(%q): sent %v, want %v", tt.expr, sent, tt.sent)
			}
		})
	}
}
