package udpproxy

import (
	"math"
	"slices"
	"time"

	"github.com/discal/discal/codec"
)

// The score: how loaded a server looks, lower is better (least-load's
// yardstick; docs/balancing.md).
//
//	score = 2 × background + in_flight × slowness / (8 × cores)
//
// What is about the whole fleet (the mean CPU, the median reply time, the
// cores a server may claim) lives in a fleet, worked out on a timer by the
// poller's fleet loop (poll.go), never per request: a choice reads one and
// scores at most three servers (policy.go).

// queuePerCore is how many outstanding requests per core the proxy counts as
// one fully busy core. It converts the live in-flight count into the same
// unit as the CPU figures.
const queuePerCore = 8

// cpuWeight is how much the background CPU (load the proxy did not send,
// see load.go) counts against the live in-flight count. Weighed double, a
// server busy with other work (measured: one burning 80% of a core) is left
// alone while the others have room, rather than given a share in
// proportion to its spare capacity.
const cpuWeight = 2

// maxCores is the most cores the proxy believes of any server, whatever it
// reports: a report is a claim, and capacity earns work.
const maxCores = 1024

// maxSlowness bounds how much a slow server's queue counts: a server 64
// times slower than the median is as good as out already.
const maxSlowness = 64

// fleetEvery is how often the fleet loop works out the fleet's figures
// while anything moves.
// Reports arrive every poll interval (100 ms by default); a fifth of that
// keeps the figures as fresh as the reports for a pass over the list that
// costs microseconds even at a thousand servers.
const fleetEvery = 20 * time.Millisecond

// fleet is what scoring needs to know about all servers at once.
type fleet struct {
	meanCPU    float64 // background of the servers with fresh reports: stands in for a stale one
	medianLat  float64 // µs: the yardstick of slowness
	coreCap    float64 // no server is believed to have more cores than this
	meanWeight float64 // of the SRV servers with a weight, 0 when none has one
}

func newFleet(all []*Server, now int64) *fleet {
	f := &fleet{coreCap: maxCores}
	n, weights := 0, 0
	var lats, cores []float64
	for _, s := range all {
		if w := s.weight(); w > 0 {
			f.meanWeight += float64(w)
			weights++
		}
		if r := s.polled.report.Load(); r != nil {
			cores = append(cores, float64(plausibleCores(r.Status)))
			if freshness(now-r.at, s.pollInterval()) == 1 {
				f.meanCPU += s.background()
				n++
			}
		}
		if l := s.traffic.recentLatencyUS(now); l > 0 && s.takesWork() {
			lats = append(lats, l)
		}
	}
	if n > 0 {
		f.meanCPU /= float64(n)
	}
	if weights > 0 {
		f.meanWeight /= float64(weights)
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		f.medianLat = lats[len(lats)/2]
	}
	// A server may claim at most twice the cores of the fleet's lower
	// median: a real fleet may mix sizes, but one that claims far more
	// than its peers has to show it in its answers, and the in-flight
	// count and its latency are what show it.
	if len(cores) > 1 {
		slices.Sort(cores)
		f.coreCap = 2 * cores[(len(cores)-1)/2]
	}
	return f
}

// plausibleCores is a report's cores, clamped to what can be true: at
// least 1, no more than the host it says it runs on, and at most maxCores.
func plausibleCores(st codec.Status) int {
	c := max(st.Cores, 1)
	if st.HostCores > 0 {
		c = min(c, st.HostCores)
	}
	return min(c, maxCores)
}

// cores is what the proxy believes of s's capacity: its reported cores,
// clamped, and scaled by its SRV weight against the mean weight (RFC
// 2782's weight read as a capacity factor: a weight twice the others'
// takes twice the requests in flight before it looks as busy). A weight of
// 0 counts as a tenth of the mean: it takes work only when the others are
// busy.
func (f *fleet) cores(s *Server) float64 {
	c := 1.0
	if r := s.polled.report.Load(); r != nil {
		c = min(float64(plausibleCores(r.Status)), f.coreCap)
	}
	if f.meanWeight > 0 && s.source == fromSRV {
		c *= max(float64(s.weight()), f.meanWeight/10) / f.meanWeight
	}
	return c
}

// freshness weighs a report by its age: fully trusted up to two poll
// intervals (one missed poll), not at all from five, linearly between.
// (Three missed polls take the server out of rotation anyway.)
func freshness(age int64, poll time.Duration) float64 {
	p := int64(poll)
	switch {
	case age <= 2*p:
		return 1
	case age >= 5*p:
		return 0
	}
	return float64(5*p-age) / float64(3*p)
}

// score is s's load, lower is better:
//
//	background = the share of the server's capacity its process and its
//	            host spend on work the proxy did not send (load.go); as the
//	            last report ages past two poll intervals it is blended into
//	            the mean of the fresh ones, so a stale report neither
//	            attracts nor repels work
//	slowness  = the server's average reply time over the fleet's median,
//	            from 1 (no faster than the median: a fast server earns no
//	            extra work, which would only pull work towards idle ones)
//	            up to 64; an average no reply has fed for a second no
//	            longer counts
//	cores     = what it reports, clamped (plausibleCores, coreCap)
//
// in_flight is what the proxy has sent the server and not yet seen
// answered; it is exact and current, so a burst inside one poll interval
// raises the score of each server it lands on at once and spreads instead
// of herding onto the server that looked idle at the last poll. Weighing
// it by slowness makes a queue at a slow server count for more, which is
// what it costs a request that joins it. Dividing by cores gives a server
// with more cores proportionally more work.
func (f *fleet) score(s *Server, now int64) float64 {
	cpu := f.meanCPU
	if r := s.polled.report.Load(); r != nil {
		w := freshness(now-r.at, s.pollInterval())
		cpu = w*s.background() + (1-w)*f.meanCPU
	}
	slowness := 1.0
	if lat := s.traffic.recentLatencyUS(now); lat > 0 && f.medianLat > 0 {
		slowness = min(max(lat/f.medianLat, 1), maxSlowness)
	}
	q := float64(s.traffic.inFlight.Load()) * slowness
	v := cpuWeight*cpu + q/(queuePerCore*f.cores(s))
	if math.IsNaN(v) {
		return math.Inf(1) // never chosen over a server with a real score
	}
	return v
}
