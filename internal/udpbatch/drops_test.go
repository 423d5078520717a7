package udpbatch

import (
	"math"
	"testing"
)

// TestDropCounterWraps feeds the kernel's 32-bit counts to a DropCounter:
// the total follows them across the wrap at 2^32 and never goes back for a
// count read late.
func TestDropCounterWraps(t *testing.T) {
	for _, c := range []struct {
		name   string
		counts []uint32
		want   uint64
	}{
		{"none", nil, 0},
		{"steady", []uint32{0, 5, 5, 12}, 12},
		{"wraps", []uint32{math.MaxUint32 - 2, 4}, math.MaxUint32 - 2 + 7},
		{"a late read", []uint32{10, 20, 15, 25}, 25},
		{"twice around", []uint32{1 << 31, math.MaxUint32, 1 << 30, 1 << 31, math.MaxUint32, 3}, 2<<32 + 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d DropCounter
			for _, n := range c.counts {
				d.add(n)
			}
			if d.total != c.want {
				t.Fatalf("total %d, want %d", d.total, c.want)
			}
		})
	}
}
