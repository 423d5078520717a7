package flood

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Run floods the targets as cfg says and returns what it measured. It
// returns early, with what it has, when ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	rs := &run{cfg: cfg, start: time.Now()}
	if cfg.Duration > 0 {
		rs.stopAt = int64(cfg.Duration)
	}
	conns, err := openConns(rs)
	defer func() {
		for _, c := range conns {
			c.sock.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	if err := setPace(cfg, conns); err != nil {
		return nil, err
	}
	cpu0 := cpuTime()
	rs.start = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.read() })
		wg.Go(func() { c.tick(ctx) })
		if cfg.Rate == 0 {
			c.fill()
		}
	}
	if cfg.Rate > 0 {
		wg.Go(func() { pace(ctx, rs, conns) })
	}
	var progress sync.WaitGroup
	if cfg.Progress != nil {
		progress.Go(func() { showProgress(ctx, rs, conns) })
	}
	for _, c := range conns {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
	cancel()
	progress.Wait() // no progress line after the result
	for _, c := range conns {
		c.sock.Close() // ends the readers
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	return collect(rs, conns, cpu), nil
}

// openConns dials a connection for each of cfg.Conns, spread over the
// targets in turn, and gives each its share of the requests and slots.
// It returns what it opened even on error, for the caller to close.
func openConns(rs *run) ([]*conn, error) {
	cfg := rs.cfg
	conns := make([]*conn, 0, cfg.Conns)
	share := func(total, i int) int { // split total over the connections
		n := total / cfg.Conns
		if i < total%cfg.Conns {
			n++
		}
		return n
	}
	for i := range cfg.Conns {
		c, err := newConn(rs, i, cfg.Targets[i%len(cfg.Targets)])
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		c.quota = -1
		if cfg.Requests > 0 {
			c.quota = share(cfg.Requests, i)
		}
		c.window = share(cfg.InFlight, i)
		if cfg.Rate > 0 {
			c.window = openSlots(cfg)
		}
		c.initSlots()
	}
	return conns, nil
}

// setPace gives each connection of the open loop its interval and first
// moment, staggered. It runs before any goroutine does: the pacer reads
// them.
func setPace(cfg Config, conns []*conn) error {
	if cfg.Rate == 0 {
		return nil
	}
	interval := int64(float64(time.Second) * float64(len(conns)) / cfg.Rate)
	if interval < 1 {
		return fmt.Errorf("flood: rate %v is beyond what can be paced", cfg.Rate)
	}
	for i, c := range conns {
		c.interval = interval
		c.next = int64(i) * interval / int64(len(conns))
	}
	return nil
}

// showProgress calls cfg.Progress four times a second until ctx ends.
func showProgress(ctx context.Context, rs *run, conns []*conn) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rs.cfg.Progress(snapshot(rs, conns))
		}
	}
}

// run is what the connections of one run share.
type run struct {
	cfg    Config
	start  time.Time
	stopAt int64 // nanoseconds after start when starting stops; 0 for none
}

func (rs *run) now() int64 { return int64(time.Since(rs.start)) }

// openSlots sizes an open-loop connection's slot table for every request
// that can be waiting at the intended rate, to the longest a request waits.
func openSlots(cfg Config) int {
	wait := cfg.Timeout
	for i, w := 0, cfg.Timeout; i < cfg.Retries; i++ {
		w = min(2*w, 4*cfg.Timeout)
		wait += w
	}
	n := int(cfg.Rate/float64(cfg.Conns)*wait.Seconds()) + 64
	return min(max(n, 1024), maxSlots)
}

func snapshot(rs *run, conns []*conn) Snapshot {
	s := Snapshot{Elapsed: time.Since(rs.start)}
	for _, c := range conns {
		c.mu.Lock()
		s.Sent += c.sent
		s.OK += c.ok
		s.Wrong += c.wrong
		s.Errors += c.errors
		s.Timeouts += c.timeouts
		s.InFlight += c.active
		c.mu.Unlock()
	}
	return s
}

func collect(rs *run, conns []*conn, cpu time.Duration) *Result {
	cfg := rs.cfg
	r := &Result{Targets: cfg.Targets, Conns: cfg.Conns, PerServer: map[string]uint64{}, CPU: cpu}
	if cfg.Rate > 0 {
		r.Rate = cfg.Rate
	} else {
		r.InFlight = cfg.InFlight
	}
	h := newHistogram()
	var last int64
	for _, c := range conns {
		c.mu.Lock()
		r.Sent += c.sent
		r.OK += c.ok
		r.Wrong += c.wrong
		r.Errors += c.errors
		r.Timeouts += c.timeouts
		r.Retransmits += c.retransmits
		r.Late += c.late
		r.Overruns += c.overruns
		r.Unfinished += uint64(c.active)
		for k, v := range c.perServer {
			r.PerServer[k] += v
		}
		h.Merge(c.hist)
		last = max(last, c.lastAnswer)
		c.mu.Unlock()
	}
	r.Timeline = timeline(cfg.Timeline, conns) // the readers have stopped: no lock needed
	r.Duration = time.Duration(last)
	if last > 0 {
		r.RPS = float64(r.OK+r.Wrong+r.Errors) / r.Duration.Seconds()
	}
	q := func(p float64) time.Duration { return time.Duration(h.ValueAtQuantile(p)) * time.Microsecond }
	if h.TotalCount() > 0 {
		r.P50, r.P90, r.P99, r.P999 = q(50), q(90), q(99), q(99.9)
		r.Max = time.Duration(h.Max()) * time.Microsecond
	}
	return r
}

// newHistogram records microseconds from 1 us to 10 minutes with three
// significant digits.
func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

func resolve(target string) (*net.UDPAddr, error) {
	a, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("flood: target %q: %w", target, err)
	}
	return a, nil
}
