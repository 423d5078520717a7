package main

import (
	"bufio"
	"fmt"
	"image/color"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/discal/discal/bench/flood"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// loadSample is what the proxy said of each server's process CPU at one
// moment of the run.
type loadSample struct {
	at   time.Duration
	proc map[string]float64 // server name -> reported process CPU, percent of one core
}

// loadRecorder asks a proxy for its view of the servers every interval
// while a run lasts, for the plot.
type loadRecorder struct {
	mu      sync.Mutex
	samples []loadSample
	stop    chan struct{}
	done    chan struct{}
}

// statsLine reads one server line of udpproxy's text "stats" command.
var statsLine = regexp.MustCompile(`^(\S+) \S+ (?:up|down) host_cpu=[\d.]+% proc_cpu=([\d.]+)%`)

// recordLoad polls ask, which returns the proxy's stats text, every
// interval until stopped.
func recordLoad(interval time.Duration, ask func() (string, error)) *loadRecorder {
	lr := &loadRecorder{stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(lr.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-lr.stop:
				return
			case <-t.C:
			}
			text, err := ask()
			if err != nil {
				continue
			}
			s := loadSample{at: time.Since(start), proc: map[string]float64{}}
			sc := bufio.NewScanner(strings.NewReader(text))
			for sc.Scan() {
				if m := statsLine.FindStringSubmatch(sc.Text()); m != nil {
					s.proc[m[1]], _ = strconv.ParseFloat(m[2], 64)
				}
			}
			lr.mu.Lock()
			lr.samples = append(lr.samples, s)
			lr.mu.Unlock()
		}
	}()
	return lr
}

func (lr *loadRecorder) finish() []loadSample {
	close(lr.stop)
	<-lr.done
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.samples
}

// writePlot draws, against time, each server's share of the answers (top)
// and the process CPU it reported to the proxy (bottom), as a PNG.
func writePlot(path, title string, tl []flood.Bucket, loads []loadSample, local bool) error {
	names := map[string]bool{}
	for _, b := range tl {
		for n := range b.PerServer {
			names[n] = true
		}
	}
	for _, s := range loads {
		for n := range s.proc {
			names[n] = true
		}
	}
	var servers []string
	for n := range names {
		servers = append(servers, n)
	}
	slices.Sort(servers)

	share := plot.New()
	share.Title.Text = title
	share.Y.Label.Text = "share of answers (%)"
	share.X.Label.Text = "seconds"
	share.Y.Min, share.Y.Max = 0, 100
	load := plot.New()
	load.Y.Label.Text = "reported process CPU (% of a core)"
	load.X.Label.Text = "seconds"
	load.Y.Min = 0
	// A slice with few answers (the tail of a run) says little about
	// shares: leave it out rather than draw a spike.
	var all uint64
	for _, b := range tl {
		for _, n := range b.PerServer {
			all += n
		}
	}
	enough := all / uint64(max(len(tl), 1)) / 10
	var end float64
	for i, name := range servers {
		var pts, lpts plotter.XYs
		for _, b := range tl {
			var total uint64
			for _, n := range b.PerServer {
				total += n
			}
			end = max(end, (b.Start + 100*time.Millisecond).Seconds())
			if total > 0 && total >= enough {
				pts = append(pts, plotter.XY{X: b.Start.Seconds(), Y: 100 * float64(b.PerServer[name]) / float64(total)})
			}
		}
		for _, s := range loads {
			if v, ok := s.proc[name]; ok {
				lpts = append(lpts, plotter.XY{X: s.at.Seconds(), Y: v})
			}
		}
		c := plotutil.Color(i)
		for _, pl := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{share, pts}, {load, lpts}} {
			if len(pl.xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(pl.xys)
			if err != nil {
				return err
			}
			l.Color = c
			l.Width = vg.Points(1.5)
			pl.p.Add(l)
			pl.p.Legend.Add(name, l)
		}
	}
	share.Legend.Top = true
	load.Legend.Top = true
	for _, s := range loads {
		end = max(end, s.at.Seconds())
	}
	share.X.Min, share.X.Max = 0, end
	load.X.Min, load.X.Max = 0, end
	share.Add(plotter.NewGrid())
	load.Add(plotter.NewGrid())

	img := vgimg.New(vg.Points(900), vg.Points(650))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8),
		PadRight: vg.Points(12), PadY: vg.Points(16)}
	canvases := plot.Align([][]*plot.Plot{{share}, {load}}, tiles, dc)
	share.Draw(canvases[0][0])
	load.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", path)
	return nil
}
