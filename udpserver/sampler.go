package udpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"os"
	"runtime"
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
// cpu.Percent(0), whose "since the last call" state is global to the process
// and would be split between several servers in one process.
type sampler struct {
	interval  time.Duration
	proc      *process.Process
	cores     int
	hostID    string // the same for every server on this machine
	hostCores int

	hostCPU atomic.Uint64 // float64 bits: percent of all cores, 0-100
	procCPU atomic.Uint64 // float64 bits: percent of one core, 0-100*cores

	// measure takes one reading; a test may replace it to show that a
	// status reply never waits for one.
	measure func()

	lastHost       cpu.TimesStat
	lastProc       float64 // this process's user+system seconds
	lastWall       time.Time
	haveHost, have bool
}

func newSampler(interval time.Duration) *sampler {
	s := &sampler{interval: interval, cores: runtime.GOMAXPROCS(0)}
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

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.measure()
		}
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
