package flood

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Snapshot is the running count, for a progress line.
type Snapshot struct {
	Elapsed                           time.Duration
	Sent, OK, Wrong, Errors, Timeouts uint64
	InFlight                          int
}

// Result is what a run measured.
type Result struct {
	Targets  []string
	Conns    int
	InFlight int     // closed loop: requests kept in flight
	Rate     float64 // open loop: the intended rate

	Duration time.Duration // from the first send to the last answer
	RPS      float64       // answers (ok, wrong and errors) per second over Duration

	Sent        uint64 // requests started
	OK          uint64 // answered with the right result or the right error
	Wrong       uint64 // answered with anything else
	Errors      uint64 // answered with a transient error (no server, timeout, busy) after every retry
	Timeouts    uint64 // not answered after every retry
	Retransmits uint64 // sends beyond each request's first
	Late        uint64 // replies that matched no request in flight
	Overruns    uint64 // open loop: intended sends skipped because every slot was busy
	Unfinished  uint64 // still waiting when the run was cut short (Ctrl-C)

	P50, P90, P99, P999, Max time.Duration // latency of answered requests
	PerServer                map[string]uint64
	Timeline                 []Bucket // with Config.Timeline: answers per server over time

	CPU time.Duration // this process's CPU time (user+system) during the run
	// CPULabel names what CPU covers; "bench CPU" unless the caller says
	// more ran in the process (bench -local: the proxy and servers too).
	CPULabel string
}

// Bucket counts the answers per server that arrived in one slice of time,
// and their latency.
type Bucket struct {
	Start     time.Duration // from the start of the run
	PerServer map[string]uint64
	// P50 and P99 are the latency quantiles of the answers in the slice,
	// each at most a quarter high (coarse bins); 0 with no answers.
	P50, P99 time.Duration
}

type jsonBucket struct {
	StartS    float64           `json:"t_s"`
	PerServer map[string]uint64 `json:"per_server"`
	P50       float64           `json:"p50_us"`
	P99       float64           `json:"p99_us"`
}

// jsonResult fixes the JSON keys: scripts rely on them.
type jsonResult struct {
	Targets     []string          `json:"targets"`
	Conns       int               `json:"conns"`
	InFlight    int               `json:"in_flight,omitempty"`
	Rate        float64           `json:"rate,omitempty"`
	DurationS   float64           `json:"duration_s"`
	RPS         float64           `json:"rps"`
	P50         float64           `json:"p50_us"`
	P90         float64           `json:"p90_us"`
	P99         float64           `json:"p99_us"`
	P999        float64           `json:"p999_us"`
	Max         float64           `json:"max_us"`
	Sent        uint64            `json:"sent"`
	OK          uint64            `json:"ok"`
	Wrong       uint64            `json:"wrong"`
	Errors      uint64            `json:"errors"`
	Timeouts    uint64            `json:"timeouts"`
	Retransmits uint64            `json:"retransmits"`
	Late        uint64            `json:"late"`
	Overruns    uint64            `json:"overruns"`
	Unfinished  uint64            `json:"unfinished"`
	PerServer   map[string]uint64 `json:"per_server"`
	CPUS        float64           `json:"cpu_s"`
	CPUPerReqUS float64           `json:"cpu_us_per_request"`
	Timeline    []jsonBucket      `json:"timeline,omitempty"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// WriteJSON writes the result as one JSON object with the keys rps, p50_us,
// p90_us, p99_us, p999_us, max_us, sent, ok, wrong, errors, timeouts,
// per_server (server name -> answers) and more.
func (r *Result) WriteJSON(w io.Writer) error {
	per := r.PerServer
	if per == nil {
		per = map[string]uint64{}
	}
	j := jsonResult{
		Targets: r.Targets, Conns: r.Conns, InFlight: r.InFlight, Rate: r.Rate,
		DurationS: r.Duration.Seconds(), RPS: r.RPS,
		P50: us(r.P50), P90: us(r.P90), P99: us(r.P99), P999: us(r.P999), Max: us(r.Max),
		Sent: r.Sent, OK: r.OK, Wrong: r.Wrong, Errors: r.Errors, Timeouts: r.Timeouts,
		Retransmits: r.Retransmits, Late: r.Late, Overruns: r.Overruns, Unfinished: r.Unfinished,
		PerServer: per, CPUS: r.CPU.Seconds(),
	}
	if n := r.OK + r.Wrong + r.Errors; n > 0 {
		j.CPUPerReqUS = us(r.CPU) / float64(n)
	}
	for _, b := range r.Timeline {
		j.Timeline = append(j.Timeline, jsonBucket{StartS: b.Start.Seconds(), PerServer: b.PerServer, P50: us(b.P50), P99: us(b.P99)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

// WriteTable writes the result for people.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	load := fmt.Sprintf("closed loop, %d in flight", r.InFlight)
	if r.Rate > 0 {
		load = fmt.Sprintf("open loop, %.0f/s intended", r.Rate)
	}
	fmt.Fprintf(&b, "target      %s (%d sockets, %s)\n", strings.Join(r.Targets, ", "), r.Conns, load)
	fmt.Fprintf(&b, "duration    %.2fs\n", r.Duration.Seconds())
	fmt.Fprintf(&b, "throughput  %.0f requests/s\n", r.RPS)
	fmt.Fprintf(&b, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.P999), fmtDur(r.Max))
	fmt.Fprintf(&b, "requests    sent %d  ok %d  wrong %d  errors %d  timeouts %d\n",
		r.Sent, r.OK, r.Wrong, r.Errors, r.Timeouts)
	fmt.Fprintf(&b, "            retransmits %d  late replies %d", r.Retransmits, r.Late)
	if r.Rate > 0 {
		fmt.Fprintf(&b, "  overruns %d", r.Overruns)
	}
	if r.Unfinished > 0 {
		fmt.Fprintf(&b, "  unfinished %d", r.Unfinished)
	}
	b.WriteString("\n")
	if len(r.PerServer) > 0 {
		names := make([]string, 0, len(r.PerServer))
		var total uint64
		for name, n := range r.PerServer {
			names = append(names, name)
			total += n
		}
		slices.Sort(names)
		b.WriteString("per server ")
		for _, name := range names {
			n := r.PerServer[name]
			fmt.Fprintf(&b, " %s %d (%.1f%%)", name, n, 100*float64(n)/float64(total))
		}
		b.WriteString("\n")
	}
	if n := r.OK + r.Wrong + r.Errors; n > 0 && r.CPU > 0 {
		label := r.CPULabel
		if label == "" {
			label = "bench CPU"
		}
		fmt.Fprintf(&b, "%-11s %.2fs (%.2f us per request)\n", label, r.CPU.Seconds(), us(r.CPU)/float64(n))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dus", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// Line is a one-line summary of a snapshot, for the progress display.
func (s Snapshot) Line() string {
	rps := 0.0
	if s.Elapsed > 0 {
		rps = float64(s.OK+s.Wrong+s.Errors) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("%5.1fs  %8.0f req/s  sent %d  ok %d  wrong %d  errors %d  timeouts %d  in flight %d",
		s.Elapsed.Seconds(), rps, s.Sent, s.OK, s.Wrong, s.Errors, s.Timeouts, s.InFlight)
}
