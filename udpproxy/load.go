package udpproxy

import "math"

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
//
// The model is the poller's: its reader updates it with every report, its
// fleet loop recomputes it (poll.go), and each server's background is the
// one thing it hands out (Server.background).

// group is a host or a process: a CPU figure, smoothed over the reports of
// every server that belongs to it, and the background share that remains
// when the members' requests are accounted for.
type group struct {
	key     string
	busy    float64 // cores in use, smoothed
	slow    float64 // cores in use, smoothed over about a second, for the cost estimate
	cores   float64
	fresh   bool // busy holds no reading yet
	members map[*member]bool
	bg      float64 // background share of capacity, 0 to 1
}

// member is one server in the model: the groups it belongs to and the
// requests a second it has served lately, from its reports.
type member struct {
	proc, host *group
	rate       float64 // smoothed like its process figure
	slowRate   float64 // smoothed over about a second
}

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

// loadModel is the poller's: the groups, by key, the servers in them, and
// the estimated cost of a request in CPU seconds. The poller holds its lock
// around every call.
type loadModel struct {
	groups  map[string]*group
	members map[*Server]*member
	cost    float64
}

func newLoadModel() *loadModel {
	return &loadModel{groups: map[string]*group{}, members: map[*Server]*member{}}
}

// join puts mb in the group named key, leaving old if that is another, and
// forgets groups nobody belongs to any more (a server restarted under a new
// process, say).
func (m *loadModel) join(mb *member, old *group, key string) *group {
	if old != nil {
		if old.key == key {
			return old
		}
		m.quit(mb, old)
	}
	g, ok := m.groups[key]
	if !ok {
		g = &group{key: key, fresh: true, members: map[*member]bool{}}
		m.groups[key] = g
	}
	g.members[mb] = true
	return g
}

// quit takes mb out of g, and forgets g if nobody is left in it.
func (m *loadModel) quit(mb *member, g *group) {
	delete(g.members, mb)
	if len(g.members) == 0 {
		delete(m.groups, g.key)
	}
}

// leave takes s out of the model and its groups.
func (m *loadModel) leave(s *Server) {
	if mb := m.members[s]; mb != nil {
		m.quit(mb, mb.proc)
		m.quit(mb, mb.host)
		delete(m.members, s)
	}
}

// update folds one server's report into the model. It costs the same
// whatever the size of the fleet: what is about every group (the cost of
// a request, each group's background) is worked out by recompute.
func (m *loadModel) update(s *Server, prev *report, st *statusFigures, now int64) {
	mb := m.members[s]
	if mb == nil {
		mb = &member{}
		m.members[s] = mb
	}
	if prev != nil && st.served >= prev.Served && now > prev.at {
		r := float64(st.served-prev.Served) / (float64(now-prev.at) / 1e9)
		mb.rate = smooth(mb.rate, r, rateWeight, false)
		mb.slowRate = smooth(mb.slowRate, r, slowWeight, false)
	}
	mb.proc = m.join(mb, mb.proc, st.procKey)
	mb.host = m.join(mb, mb.host, st.hostKey)
	proc, host := mb.proc, mb.host
	proc.busy = smooth(proc.busy, st.procBusy, procWeight, proc.fresh)
	proc.slow = smooth(proc.slow, st.procBusy, slowWeight, proc.fresh)
	proc.cores, proc.fresh = st.cores, false
	host.busy = smooth(host.busy, st.hostBusy, hostWeight, host.fresh)
	host.cores, host.fresh = st.hostCores, false
}

// recompute works out the cost of a request and every group's background,
// in one pass over the groups and their members, and hands each server
// its background. Servers that have left the list leave the model here.
func (m *loadModel) recompute() {
	for s := range m.members {
		if s.removed.Load() {
			m.leave(s)
		}
	}
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
		g.bg = math.Max(0, math.Min(1, bg))
	}
	for s, mb := range m.members {
		s.polled.background.Store(math.Float64bits(mb.proc.bg + mb.host.bg))
	}
}

// rate is the requests a second the group's servers serve.
func (g *group) rate() float64 {
	var r float64
	for mb := range g.members {
		r += mb.rate
	}
	return r
}

// slowRate is rate smoothed over about a second.
func (g *group) slowRate() float64 {
	var r float64
	for mb := range g.members {
		r += mb.slowRate
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

func figures(s *Server, st *report) *statusFigures {
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
		f.hostKey = "host of " + s.addr.Calc
	}
	if st.ProcID == "" {
		f.procKey = "proc of " + s.addr.Calc
	}
	return f
}
