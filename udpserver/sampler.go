package udpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/host"
	"github.com/shirou/gopsutil/v3/process"
)

// procID names this process for the proxy: random, so that it differs
// across hosts, restarts and containers (where every server is PID 1), and
// shared by every server in the process, which share its CPU figure.
var procID = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// sampler measures CPU use in the background and keeps the last figures in
// atomics, so that answering a status query costs two loads, never a
// measurement. It keeps its own previous readings rather than using
// cpu.Percent(0), whose "since the last call" state is global to the process.
//
// The figures are the host's and the process's, the same for every server
// in a process, so the servers of one process share one sampler (see
// samplerFor): cmd/discal -servers 64 measured the same two figures 64
// times per interval. It measures when a status query has come (the status
// loop wakes it, after answering, at most once per interval) and by its own
// timer only when no query came for two intervals: a polled server wakes
// once per poll, not once per poll and once per tick, and an idle one
// still keeps its metrics fresh.
type sampler struct {
	interval  time.Duration
	proc      *process.Process
	cores     int
	hostID    string // the same for every server on this machine
	hostCores int

	hostCPU atomic.Uint64 // float64 bits: percent of all cores, 0-100
	procCPU atomic.Uint64 // float64 bits: percent of one core, 0-100*cores
	asked   chan struct{} // a status query came; buffered, so that asking never waits

	// measure takes one reading; a test may replace it to show that a
	// status reply never waits for one.
	measure func()

	// Kept by the goroutine that measures.
	lastHost       cpu.TimesStat
	lastProc       float64 // this process's user+system seconds
	lastWall       time.Time
	haveHost, have bool

	users   int                // servers serving with it; under samplers.mu
	stop    context.CancelFunc // ends run, once the last user has gone
	stopped chan struct{}      // closed when run has ended
}

// samplers are this process's samplers, by interval.
var samplers struct {
	mu sync.Mutex
	m  map[time.Duration]*sampler
}

// samplerFor returns the process's sampler for interval, made at the first
// call. Serve starts it (start) and lets it go (stop).
func samplerFor(interval time.Duration) *sampler {
	samplers.mu.Lock()
	defer samplers.mu.Unlock()
	if s := samplers.m[interval]; s != nil {
		return s
	}
	s := newSampler(interval)
	if samplers.m == nil {
		samplers.m = map[time.Duration]*sampler{}
	}
	samplers.m[interval] = s
	return s
}

// start runs s for one more server, starting its goroutine for the first;
// the returned func lets it go, and ends the goroutine with the last.
func (s *sampler) start() (release func()) {
	samplers.mu.Lock()
	defer samplers.mu.Unlock()
	if s.users++; s.users == 1 {
		ctx, stop := context.WithCancel(context.Background())
		s.stop, s.stopped = stop, make(chan struct{})
		go func(done chan struct{}) {
			defer close(done)
			s.run(ctx)
		}(s.stopped)
	}
	var once sync.Once
	return func() { once.Do(s.release) }
}

func (s *sampler) release() {
	samplers.mu.Lock()
	s.users--
	last, stop, stopped := s.users == 0, s.stop, s.stopped
	samplers.mu.Unlock()
	if last {
		stop()
		<-stopped
	}
}

func newSampler(interval time.Duration) *sampler {
	s := &sampler{interval: interval, cores: runtime.GOMAXPROCS(0), asked: make(chan struct{}, 1)}
	s.hostCores = s.cores
	if n, err := cpu.Counts(true); err == nil && n > 0 {
		// GOMAXPROCS already follows a cgroup CPU limit; the host count
		// caps it when the limit is looser than the machine.
		s.cores = min(s.cores, n)
		s.hostCores = n
	}
	s.proc, _ = process.NewProcess(int32(os.Getpid()))
	if id, err := host.HostID(); err == nil && id != "" {
		s.hostID = id
	} else if name, err := os.Hostname(); err == nil {
		s.hostID = name
	}
	s.measure = s.sample
	s.sample() // a baseline, so that the first tick gives a figure
	return s
}

func (s *sampler) HostCPU() float64 { return math.Float64frombits(s.hostCPU.Load()) }
func (s *sampler) ProcCPU() float64 { return math.Float64frombits(s.procCPU.Load()) }

// ask tells the sampler that a status query was answered: time to measure
// again, if an interval has passed. It never waits.
func (s *sampler) ask() {
	select {
	case s.asked <- struct{}{}:
	default:
	}
}

// run measures until ctx ends: when asked, at most once every three
// quarters of an interval (polls are jittered around the interval), and
// when nobody asked for two intervals.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTimer(2 * s.interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.asked:
			if time.Since(last) < s.interval*3/4 {
				continue
			}
		case <-t.C:
		}
		s.measure()
		last = time.Now()
		t.Reset(2 * s.interval)
	}
}

// sample takes one reading and turns the difference from the previous one
// into percentages. A failed reading keeps the last figures.
func (s *sampler) sample() {
	now := time.Now()
	if ts, err := cpu.Times(false); err == nil && len(ts) == 1 {
		if s.haveHost {
			s.hostCPU.Store(math.Float64bits(busyPercent(s.lastHost, ts[0])))
		}
		s.lastHost, s.haveHost = ts[0], true
	}
	if s.proc != nil {
		if pt, err := s.proc.Times(); err == nil {
			used := pt.User + pt.System
			if s.have {
				wall := now.Sub(s.lastWall).Seconds()
				if wall > 0 {
					p := (used - s.lastProc) / wall * 100
					s.procCPU.Store(math.Float64bits(math.Max(0, math.Min(p, 100*float64(s.cores)))))
				}
			}
			s.lastProc, s.lastWall, s.have = used, now, true
		}
	}
}

// busyPercent is the share of CPU time between two readings that was not
// idle, the figure top shows.
func busyPercent(a, b cpu.TimesStat) float64 {
	total := func(t cpu.TimesStat) float64 {
		// Guest time is already counted in user time on Linux.
		return t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	}
	idle := func(t cpu.TimesStat) float64 { return t.Idle + t.Iowait }
	dt := total(b) - total(a)
	if dt <= 0 {
		return 0
	}
	busy := dt - (idle(b) - idle(a))
	return math.Max(0, math.Min(100, busy/dt*100))
}
