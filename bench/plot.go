package main

import (
	"bufio"
	"fmt"
	"image/color"
	"maps"
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

// plotInput is what a plot shows: the run, what the proxy said of the
// servers meanwhile, and the burdens put on them.
type plotInput struct {
	title   string
	res     *flood.Result
	loads   []loadSample
	burdens []burden
	// local: the servers ran in the bench's own process, so the CPU each
	// reported is the bench's, and is left out.
	local bool
}

// writePlot draws, against time, each server's share of the answers, the
// latency of the answers and (unless the servers ran in the bench's
// process) the process CPU each server reported to the proxy, with the
// legend beside the panels and a line where each burden starts and stops.
func writePlot(path string, in plotInput) error {
	servers := serverNames(in.res.Timeline, in.loads)
	end := plotEnd(in.res.Timeline, in.loads, in.burdens)
	legend := plot.NewLegend()
	legend.Top = true
	share, err := sharePanel(in.title, in.res.Timeline, servers, &legend)
	if err != nil {
		return err
	}
	latency, err := latencyPanel(in.res.Timeline, &legend)
	if err != nil {
		return err
	}
	panels := []*plot.Plot{share, latency}
	if !in.local {
		cpu, err := cpuPanel(in.loads, servers)
		if err != nil {
			return err
		}
		panels = append(panels, cpu)
	}
	for i, p := range panels {
		p.X.Min, p.X.Max = 0, end
		p.X.Label.Text = "seconds"
		p.Add(plotter.NewGrid())
		if err := markBurdens(p, in.burdens, &legend, i == 0); err != nil {
			return err
		}
	}
	if in.local {
		share.Title.Text += "\n(servers in the bench's process: no CPU of their own to show)"
	}
	return savePanels(path, panels, legend)
}

// serverNames is every server seen in the answers or the proxy's stats,
// sorted, so that each keeps its colour in every panel.
func serverNames(tl []flood.Bucket, loads []loadSample) []string {
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
	servers := slices.Collect(maps.Keys(names))
	slices.Sort(servers)
	return servers
}

func plotEnd(tl []flood.Bucket, loads []loadSample, burdens []burden) float64 {
	var end float64
	if len(tl) > 1 {
		end = (tl[len(tl)-1].Start + tl[1].Start).Seconds()
	}
	for _, s := range loads {
		end = max(end, s.at.Seconds())
	}
	for _, b := range burdens {
		end = max(end, b.to.Seconds())
	}
	return end
}

// sharePanel draws each server's share of the answers over time.
func sharePanel(title string, tl []flood.Bucket, servers []string, legend *plot.Legend) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "share of answers (%)"
	p.Y.Min, p.Y.Max = 0, 100
	totals, full := wellFilled(tl)
	for i, name := range servers {
		var pts plotter.XYs
		for j, b := range tl {
			if full[j] {
				pts = append(pts, plotter.XY{X: b.Start.Seconds(), Y: 100 * float64(b.PerServer[name]) / float64(totals[j])})
			}
		}
		l, err := addLine(p, pts, plotutil.Color(i), nil)
		if err != nil {
			return nil, err
		}
		if l != nil {
			legend.Add(name, l)
		}
	}
	return p, nil
}

// wellFilled returns each slice's answers and whether it has enough of
// them to plot: a slice with few answers (the tail of a run: the last
// stragglers and retries) says little about shares or latency, and is
// left out rather than drawn as a spike.
func wellFilled(tl []flood.Bucket) (totals []uint64, full []bool) {
	totals, full = make([]uint64, len(tl)), make([]bool, len(tl))
	var all uint64
	for i, b := range tl {
		for _, n := range b.PerServer {
			totals[i] += n
		}
		all += totals[i]
	}
	enough := max(all/uint64(max(len(tl), 1))/10, 1)
	for i := range tl {
		full[i] = totals[i] >= enough
	}
	return totals, full
}

// latencyPanel draws the median and 99th percentile of each slice's
// answers, on a log scale: a stall is orders of magnitude above the rest.
func latencyPanel(tl []flood.Bucket, legend *plot.Legend) (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = "latency (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var p50, p99 plotter.XYs
	_, full := wellFilled(tl)
	for i, b := range tl {
		if full[i] && b.P50 > 0 {
			p50 = append(p50, plotter.XY{X: b.Start.Seconds(), Y: ms(b.P50)})
			p99 = append(p99, plotter.XY{X: b.Start.Seconds(), Y: ms(b.P99)})
		}
	}
	black := color.Gray{Y: 40}
	for _, q := range []struct {
		name string
		xys  plotter.XYs
		dash []vg.Length
	}{{"latency p50", p50, nil}, {"latency p99", p99, []vg.Length{vg.Points(4), vg.Points(2)}}} {
		l, err := addLine(p, q.xys, black, q.dash)
		if err != nil {
			return nil, err
		}
		if l != nil {
			legend.Add(q.name, l)
		}
	}
	return p, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuPanel draws the process CPU each server reported to the proxy.
func cpuPanel(loads []loadSample, servers []string) (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = "reported process CPU (% of a core)"
	p.Y.Min = 0
	for i, name := range servers {
		var pts plotter.XYs
		for _, s := range loads {
			if v, ok := s.proc[name]; ok {
				pts = append(pts, plotter.XY{X: s.at.Seconds(), Y: v})
			}
		}
		if _, err := addLine(p, pts, plotutil.Color(i), nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// addLine adds a line through xys, if there is any, and returns it.
func addLine(p *plot.Plot, xys plotter.XYs, c color.Color, dash []vg.Length) (*plotter.Line, error) {
	if len(xys) == 0 {
		return nil, nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	l.Dashes = dash
	p.Add(l)
	return l, nil
}

// markBurdens draws a vertical line where each burden starts (solid) and
// stops (dashed); the first panel's lines go into the legend.
func markBurdens(p *plot.Plot, burdens []burden, legend *plot.Legend, inLegend bool) error {
	red := color.RGBA{R: 200, G: 30, B: 30, A: 255}
	if p.Y.Min >= p.Y.Max {
		return nil // no data, so no height to draw at
	}
	for _, b := range burdens {
		for _, m := range []struct {
			at   time.Duration
			name string
			dash []vg.Length
		}{{b.from, fmt.Sprintf("%s burns %g", b.who, b.frac), nil}, {b.to, b.who + " burn ends", []vg.Length{vg.Points(3), vg.Points(3)}}} {
			l, err := plotter.NewLine(plotter.XYs{{X: m.at.Seconds(), Y: p.Y.Min}, {X: m.at.Seconds(), Y: p.Y.Max}})
			if err != nil {
				return err
			}
			l.Color, l.Width, l.Dashes = red, vg.Points(1), m.dash
			p.Add(l)
			if inLegend {
				legend.Add(m.name, l)
			}
		}
	}
	return nil
}

// savePanels lays the panels out one above the other with the legend in a
// column of its own to the right, where it hides no data, and writes a PNG.
func savePanels(path string, panels []*plot.Plot, legend plot.Legend) error {
	const legendWidth = 150
	img := vgimg.New(vg.Points(900+legendWidth), vg.Points(float64(50+300*len(panels))))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8),
		PadRight: vg.Points(12), PadY: vg.Points(16)}
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, draw.Crop(dc, 0, -vg.Points(legendWidth), 0, 0))
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	legend.Draw(draw.Crop(dc, dc.Max.X-vg.Points(legendWidth), 0, 0, -vg.Points(40)))
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
