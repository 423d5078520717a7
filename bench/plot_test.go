package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
)

func TestParseBurden(t *testing.T) {
	for _, c := range []struct {
		in   string
		want burden
		ok   bool
	}{
		{"s1=0.8@3s-6s", burden{who: "s1", addr: "s1", frac: 0.8, from: 3 * time.Second, to: 6 * time.Second}, true},
		{"127.0.0.1:7101=1@0s-500ms", burden{who: "127.0.0.1:7101", addr: "127.0.0.1:7101", frac: 1, to: 500 * time.Millisecond}, true},
		{"s1=0.8@6s-3s", burden{}, false}, // ends before it starts
		{"s1=0@1s-2s", burden{}, false},
		{"s1=1.5@1s-2s", burden{}, false},
		{"s1=0.8@1s", burden{}, false},
		{"=0.8@1s-2s", burden{}, false},
		{"s1", burden{}, false},
	} {
		got, err := parseBurden(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseBurden(%q) = %+v, %v; want %+v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestWritePlot draws a run with and without the CPU panel and checks
// that each is a PNG, the one without the panel shorter.
func TestWritePlot(t *testing.T) {
	res := &flood.Result{}
	var loads []loadSample
	for i := range 20 {
		at := time.Duration(i) * 100 * time.Millisecond
		res.Timeline = append(res.Timeline, flood.Bucket{Start: at, PerServer: map[string]uint64{"s1": 10, "s2": uint64(5 + i)},
			P50: 200 * time.Microsecond, P99: time.Duration(1+i) * time.Millisecond})
		loads = append(loads, loadSample{at: at, proc: map[string]float64{"s1": 80, "s2": 20}})
	}
	burdens := []burden{{who: "s1", frac: 0.8, from: 500 * time.Millisecond, to: 1500 * time.Millisecond}}
	heights := map[bool]int{}
	for _, local := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "p.png")
		if err := writePlot(path, plotInput{title: "test", res: res, loads: loads, burdens: burdens, local: local}); err != nil {
			t.Fatalf("local %v: %v", local, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("local %v: not a PNG: %v", local, err)
		}
		heights[local] = img.Bounds().Dy()
	}
	if heights[true] >= heights[false] {
		t.Errorf("the plot of a -local run is %d high, the other %d: want the CPU panel left out", heights[true], heights[false])
	}
}
