package udpproxy

import (
	"math"
	"sync/atomic"
)

// The load model: what a server's CPU figures say about work the proxy
// did not send it.
//
// A server's process CPU is mostly the proxy's own requests, reported up to
// a sample late. Counted as load, that feedback made equal servers take
// turns being avoided (herding); and in_flight already counts the proxy's
// own requests, live. So the proxy estimates what one request costs, the
// CPU seconds per request of the least burdened process, and subtracts
// from each figure what the server's request rate explains. What remains,
// the background, is load from elsewhere: a -burn, a noisy neighbour,
// another tenant of the host. That is what the score weighs.
//
// Figures that several servers report alike are kept once: one per host
// (every server on it reports its CPU) and one per process (cmd/discal runs
// several servers in one). Each server samples at its own moments, so taken
// one by one such figures disagree whenever the load changes between two
// samples; kept once and fed by all of them, they agree.

// group is a host or a process: a CPU figure, smoothed over the reports of
// every server that belongs to it, and the background share that remains
// when the members' requests are accounted for. Only the poller's reader
// changes a group; the hot path reads bg.
type group struct {
	key     string
	busy    float64 // cores in use, smoothed
	slow    float64 // cores in use, smoothed over about a second, for the cost estimate
	cores   float64
	fresh   bool // busy holds no reading yet
	members map[*Server]bool
	bg      atomic.Uint64 // float64 bits: background share of capacity, 0 to 1
}

func (g *group) background() float64 { return math.Float64frombits(g.bg.Load()) }

// The weights of a new reading. A host's figure moves slowly, a quarter per
// reading (about half a second); a process's follows faster, half per
// reading, since it is what a server that turns busy shows first, yet still
// damps the noise of CPU time counted in 10 ms ticks. A server's request
// rate is smoothed like its process figure, so that the two line up.
const (
	hostWeight = 0.25
	procWeight = 0.5
	rateWeight = 0.5
	// The cost of a request is a property of the software, so it is
	// estimated from figures smoothed over about a second (slowWeight):
	// the lowest of several noisy ratios is biased low, and an estimate
	// too low makes busy servers look burdened.
	slowWeight = 0.1
)

// minCostRate is the request rate below which a process's CPU says too
// little about what a request costs to be used for the estimate.
const minCostRate = 50

// noiseFloor is background the model ignores, as a share of capacity. CPU
// time is counted in 10 ms ticks, so a 100 ms sample is good to about 10%
// of a core, and the request-rate estimate adds its own error: less than a
// tenth of a server's capacity cannot be told from noise, and counting it
// made equal servers herd onto whichever measured lowest.
const noiseFloor = 0.1

func smooth(old, v, weight float64, first bool) float64 {
	if first {
		return v
	}
	return old + weight*(v-old)
}

// sane keeps a reported figure in range: a buggy or hostile server's NaN,
// infinity or negative number must not poison a smoothed figure for good.
func sane(v, hi float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return min(v, hi)
}

func (b *Server) rateNow() float64 { return math.Float64frombits(b.rate.Load()) }

func (b *Server) slowRateNow() float64 { return math.Float64frombits(b.slowRate.Load()) }

// loadModel is the poller's: the groups, by key, and the estimated cost of
// a request in CPU seconds.
type loadModel struct {
	groups map[string]*group
	cost   float64
}

func newLoadModel() *loadModel { return &loadModel{groups: map[string]*group{}} }

// join puts b in the group named key, leaving the one it was in, and
// forgets groups nobody belongs to any more (a server restarted under a new
// process, say).
func (m *loadModel) join(b *Server, slot *atomic.Pointer[group], key string) *group {
	if old := slot.Load(); old != nil {
		if old.key == key {
			return old
		}
		delete(old.members, b)
		if len(old.members) == 0 {
			delete(m.groups, old.key)
		}
	}
	g, ok := m.groups[key]
	if !ok {
		g = &group{key: key, fresh: true, members: map[*Server]bool{}}
		m.groups[key] = g
	}
	g.members[b] = true
	slot.Store(g)
	return g
}

// leave takes b out of its groups, and forgets groups nobody belongs to
// any more.
func (m *loadModel) leave(b *Server) {
	for _, slot := range []*atomic.Pointer[group]{&b.proc, &b.host} {
		if g := slot.Load(); g != nil {
			delete(g.members, b)
			if len(g.members) == 0 {
				delete(m.groups, g.key)
			}
		}
	}
}

// update folds one server's report into the model. It costs the same
// whatever the size of the fleet: what is about every group (the cost of
// a request, each group's background) is worked out by recompute, on the
// fleet loop's tick.
func (m *loadModel) update(b *Server, prev *report, st *statusFigures, now int64) {
	if prev != nil && st.served >= prev.Served && now > prev.at {
		r := float64(st.served-prev.Served) / (float64(now-prev.at) / 1e9)
		b.rate.Store(math.Float64bits(smooth(b.rateNow(), r, rateWeight, false)))
		b.slowRate.Store(math.Float64bits(smooth(b.slowRateNow(), r, slowWeight, false)))
	}
	proc := m.join(b, &b.proc, st.procKey)
	host := m.join(b, &b.host, st.hostKey)
	proc.busy = smooth(proc.busy, st.procBusy, procWeight, proc.fresh)
	proc.slow = smooth(proc.slow, st.procBusy, slowWeight, proc.fresh)
	proc.cores, proc.fresh = st.cores, false
	host.busy = smooth(host.busy, st.hostBusy, hostWeight, host.fresh)
	host.cores, host.fresh = st.hostCores, false
}

// recompute works out the cost of a request and every group's background,
// in one pass over the groups and their members.
func (m *loadModel) recompute() {
	// The cost of a request: the lowest CPU per request among processes
	// busy enough to say. The least burdened process is the one whose CPU
	// is all requests.
	best := math.Inf(1)
	for _, g := range m.groups {
		if g.key[0] != 'p' {
			continue // hosts run more than servers
		}
		if rate := g.slowRate(); rate >= minCostRate {
			best = min(best, g.slow/rate)
		}
	}
	if !math.IsInf(best, 1) {
		m.cost = best
	}
	for _, g := range m.groups {
		bg := (g.busy-g.rate()*m.cost)/max(g.cores, 1) - noiseFloor
		g.bg.Store(math.Float64bits(math.Max(0, math.Min(1, bg))))
	}
}

// rate is the requests a second the group's servers serve.
func (g *group) rate() float64 {
	var r float64
	for b := range g.members {
		r += b.rateNow()
	}
	return r
}

// slowRate is rate smoothed over about a second.
func (g *group) slowRate() float64 {
	var r float64
	for b := range g.members {
		r += b.slowRateNow()
	}
	return r
}

// statusFigures is a status reply reduced to what the model uses, checked.
type statusFigures struct {
	procKey, hostKey   string
	procBusy, hostBusy float64 // cores in use
	cores, hostCores   float64
	served             uint64
}

func figures(b *Server, st *report) *statusFigures {
	cores := float64(plausibleCores(st.Status))
	hostCores := float64(min(max(st.Cores, st.HostCores, 1), maxCores))
	f := &statusFigures{
		procBusy:  sane(st.ProcCPU/100, cores),
		hostBusy:  sane(st.HostCPU/100, 1) * hostCores,
		cores:     cores,
		hostCores: hostCores,
		served:    st.Served,
		procKey:   "proc " + st.HostID + " " + st.ProcID,
		hostKey:   "host " + st.HostID,
	}
	// Servers that name neither count as a host and a process of their own.
	if st.HostID == "" {
		f.hostKey = "host of " + b.addr.Calc
	}
	if st.ProcID == "" {
		f.procKey = "proc of " + b.addr.Calc
	}
	return f
}
