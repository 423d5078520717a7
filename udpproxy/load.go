package udpproxy

import (
	"math"

	"github.com/discal/discal/codec"
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
//
// The model is the poller goroutine's: it updates it with every report and
// recomputes it with the fleet's figures (poll.go), and each server's
// background is the one thing it hands out (Server.background).

// group is a host or a process: a CPU figure, smoothed over the reports of
// every server that belongs to it, and the background share that remains
// when the members' requests are accounted for.
type group struct {
	key      string
	at       int     // its place in loadModel.all
	busy     float64 // cores in use, smoothed
	slow     float64 // cores in use, smoothed over about a second, for the cost estimate
	cores    float64
	fresh    bool    // busy holds no reading yet
	n        int     // members
	rate     float64 // the members' request rates, summed
	slowRate float64 // the same for their slow rates
	bg       float64 // background share of capacity, 0 to 1
}

// member is one server in the model: the groups it belongs to, the IDs it
// named them by, and the requests a second it has served lately, from its
// reports.
type member struct {
	s              *Server
	at             int // its place in loadModel.list
	proc, host     *group
	hostID, procID string
	rate           float64 // smoothed like its process figure
	slowRate       float64 // smoothed over about a second
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

// loadModel is the poller goroutine's: the groups, by key, the servers in
// them, and the estimated cost of a request in CPU seconds. A report costs
// a few map lookups and a recompute a pass over the groups and one over
// the servers, without nested loops or allocation: a thousand servers
// report ten thousand times a second at -poll-budget -1.
type loadModel struct {
	groups  map[string]*group
	all     []*group // the same groups, for recompute's passes
	members map[*Server]*member
	list    []*member // the same members, likewise
	cost    float64
	passes  int // recomputes since the groups' sums were added up afresh
}

func newLoadModel() *loadModel {
	return &loadModel{groups: map[string]*group{}, members: map[*Server]*member{}}
}

// join moves mb from old, if it is another group, to the group named key,
// with its share of the request rates, and forgets groups nobody belongs to
// any more (a server restarted under a new process, say).
func (m *loadModel) join(mb *member, old *group, key string) *group {
	if old != nil {
		if old.key == key {
			return old
		}
		m.quit(mb, old)
	}
	g, ok := m.groups[key]
	if !ok {
		g = &group{key: key, at: len(m.all), fresh: true}
		m.groups[key] = g
		m.all = append(m.all, g)
	}
	g.n++
	g.rate += mb.rate
	g.slowRate += mb.slowRate
	return g
}

// quit takes mb out of g, and forgets g if nobody is left in it.
func (m *loadModel) quit(mb *member, g *group) {
	g.n--
	g.rate -= mb.rate
	g.slowRate -= mb.slowRate
	if g.n > 0 {
		return
	}
	delete(m.groups, g.key)
	last := m.all[len(m.all)-1]
	m.all[g.at], last.at = last, g.at
	m.all = m.all[:len(m.all)-1]
}

// leave takes s out of the model and its groups.
func (m *loadModel) leave(s *Server) {
	mb := m.members[s]
	if mb == nil {
		return
	}
	m.quit(mb, mb.proc)
	m.quit(mb, mb.host)
	delete(m.members, s)
	last := m.list[len(m.list)-1]
	m.list[mb.at], last.at = last, mb.at
	m.list = m.list[:len(m.list)-1]
}

// update folds one server's report into the model. It costs the same
// whatever the size of the fleet: what is about every group (the cost of
// a request, each group's background) is worked out by recompute.
func (m *loadModel) update(s *Server, prev, r *report) {
	mb := m.members[s]
	if mb == nil {
		mb = &member{s: s, at: len(m.list)}
		m.members[s] = mb
		m.list = append(m.list, mb)
	}
	st := figures(r)
	if mb.proc == nil || r.HostID != mb.hostID || r.ProcID != mb.procID {
		// The keys are built only when a server names other groups than
		// before: a report that names the same ones allocates nothing.
		mb.hostID, mb.procID = r.HostID, r.ProcID
		procKey, hostKey := groupKeys(s, &r.Status)
		mb.proc = m.join(mb, mb.proc, procKey)
		mb.host = m.join(mb, mb.host, hostKey)
	}
	if prev != nil && st.served >= prev.Served && r.at > prev.at {
		v := float64(st.served-prev.Served) / (float64(r.at-prev.at) / 1e9)
		rate, slowRate := smooth(mb.rate, v, rateWeight, false), smooth(mb.slowRate, v, slowWeight, false)
		for _, g := range [...]*group{mb.proc, mb.host} {
			g.rate += rate - mb.rate
			g.slowRate += slowRate - mb.slowRate
		}
		mb.rate, mb.slowRate = rate, slowRate
	}
	proc, host := mb.proc, mb.host
	proc.busy = smooth(proc.busy, st.procBusy, procWeight, proc.fresh)
	proc.slow = smooth(proc.slow, st.procBusy, slowWeight, proc.fresh)
	proc.cores, proc.fresh = st.cores, false
	host.busy = smooth(host.busy, st.hostBusy, hostWeight, host.fresh)
	host.cores, host.fresh = st.hostCores, false
}

// resumEvery is how many recomputes the groups' rate sums, kept up as
// members' rates change, go before they are added up afresh, so that
// rounding cannot build up in them.
const resumEvery = 256

// recompute works out the cost of a request and every group's background,
// in one pass over the groups, and hands each server its background in one
// over the servers. Servers that have left the list leave the model here.
func (m *loadModel) recompute() {
	for i := 0; i < len(m.list); {
		if mb := m.list[i]; mb.s.removed.Load() {
			m.leave(mb.s) // moves the last member here
			continue
		}
		i++
	}
	if m.passes++; m.passes >= resumEvery {
		m.resum()
	}
	// The cost of a request: the lowest CPU per request among processes
	// busy enough to say. The least burdened process is the one whose CPU
	// is all requests.
	best := math.Inf(1)
	for _, g := range m.all {
		if g.key[0] == 'p' && g.slowRate >= minCostRate { // hosts run more than servers
			best = min(best, g.slow/g.slowRate)
		}
	}
	if !math.IsInf(best, 1) {
		m.cost = best
	}
	for _, g := range m.all {
		bg := (g.busy-g.rate*m.cost)/max(g.cores, 1) - noiseFloor
		g.bg = math.Max(0, math.Min(1, bg))
	}
	for _, mb := range m.list {
		mb.s.polled.background.Store(math.Float64bits(mb.proc.bg + mb.host.bg))
	}
}

// resum adds the groups' rates up afresh from their members'.
func (m *loadModel) resum() {
	m.passes = 0
	for _, g := range m.all {
		g.rate, g.slowRate = 0, 0
	}
	for _, mb := range m.list {
		for _, g := range [...]*group{mb.proc, mb.host} {
			g.rate += mb.rate
			g.slowRate += mb.slowRate
		}
	}
}

// statusFigures is a status reply reduced to what the model uses, checked.
type statusFigures struct {
	procBusy, hostBusy float64 // cores in use
	cores, hostCores   float64
	served             uint64
}

func figures(r *report) statusFigures {
	cores := float64(plausibleCores(r.Status))
	hostCores := float64(min(max(r.Cores, r.HostCores, 1), maxCores))
	return statusFigures{
		procBusy:  sane(r.ProcCPU/100, cores),
		hostBusy:  sane(r.HostCPU/100, 1) * hostCores,
		cores:     cores,
		hostCores: hostCores,
		served:    r.Served,
	}
}

// groupKeys names the process and the host a report speaks for. Servers
// that name neither count as a host and a process of their own.
func groupKeys(s *Server, st *codec.Status) (proc, host string) {
	proc, host = "proc "+st.HostID+" "+st.ProcID, "host "+st.HostID
	if st.HostID == "" {
		host = "host of " + s.addr.Calc
	}
	if st.ProcID == "" {
		proc = "proc of " + s.addr.Calc
	}
	return proc, host
}
