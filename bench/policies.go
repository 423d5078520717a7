package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/discal/discal/bench/flood"
)

// policiesConfig is the -policies mode: the same servers and the same load
// through udpproxy with each policy in turn, the first server burdened
// with -burn, to show what load-aware choice buys.
type policiesConfig struct {
	rounds     int
	servers    int
	burn       float64
	basePort   int
	load       flood.Config
	plotPrefix string // when set, write PREFIX-POLICY.png from the last round
	out        io.Writer
}

type policyRun struct {
	rps, p50, p99, p999 float64
	shares              map[string]float64
	answers             map[string]uint64 // as the round's line prints them
}

func runPolicies(ctx context.Context, pc policiesConfig) error {
	dir, err := os.MkdirTemp("", "discal-policies-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(pc.out, "building udpserver and udpproxy into %s\n", dir)
	if err := goBuild(dir, "./cmd/udpserver", "./cmd/udpproxy"); err != nil {
		return err
	}
	var procs processes
	defer procs.stop()
	serverArgs, names, err := startPolicyServers(pc, dir, &procs)
	if err != nil {
		return err
	}
	policies := []string{"least-load", "round-robin", "random"}
	runs := map[string][]policyRun{}
	order := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for round := 1; round <= pc.rounds; round++ {
		turn := slices.Clone(policies)
		order.Shuffle(len(turn), func(i, j int) { turn[i], turn[j] = turn[j], turn[i] })
		for _, pol := range turn {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := runPolicy(ctx, pc, dir, serverArgs, pol, round == pc.rounds)
			if err != nil {
				return err
			}
			runs[pol] = append(runs[pol], r)
			fmt.Fprintf(pc.out, "round %d  %-12s %9.0f req/s  p50 %6.0fus  p99 %6.0fus  p99.9 %6.0fus  shares %v\n",
				round, pol, r.rps, r.p50, r.p99, r.p999, r.answers)
		}
	}
	return printPolicies(pc, policies, names, runs)
}

// startPolicyServers starts the servers, the first one burdened, and
// returns the proxy's -server arguments for them and their names.
func startPolicyServers(pc policiesConfig, dir string, procs *processes) (serverArgs, names []string, err error) {
	for i := range pc.servers {
		name := fmt.Sprintf("s%d", i+1)
		calc := fmt.Sprintf("127.0.0.1:%d", pc.basePort+1+i)
		status := fmt.Sprintf("127.0.0.1:%d", pc.basePort+101+i)
		args := []string{"-quiet", "-name", name, "-addr", calc, "-status-addr", status}
		if i == 0 {
			args = append(args, "-burn", fmt.Sprint(pc.burn))
			name += fmt.Sprintf(" (burn %g)", pc.burn)
		}
		// One core each, like three single-core machines: the burden
		// then takes most of s1's capacity, as a busy neighbour would.
		p, err := startLoggedEnv([]string{"GOMAXPROCS=1"}, filepath.Join(dir, "udpserver"), `udpserver serving`, args...)
		if err != nil {
			return nil, nil, err
		}
		procs.add(p)
		names = append(names, name)
		serverArgs = append(serverArgs, "-server", calc+","+status)
	}
	return serverArgs, names, nil
}

// runPolicy starts a proxy with the policy, floods it once and stops it;
// with plot, it also draws the run.
func runPolicy(ctx context.Context, pc policiesConfig, dir string, serverArgs []string, pol string, plot bool) (policyRun, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", pc.basePort)
	proxy, err := startLogged(filepath.Join(dir, "udpproxy"), `udpproxy serving`,
		append(slices.Clone(serverArgs), "-addr", addr, "-policy", pol)...)
	if err != nil {
		return policyRun{}, err
	}
	defer stopProcess(proxy)
	// Let the proxy hear from every server, the burden included, before
	// the load starts.
	if err := waitForReports(addr, pc.servers); err != nil {
		return policyRun{}, err
	}
	load := pc.load
	load.Targets = []string{addr}
	plot = plot && pc.plotPrefix != ""
	var loads *loadRecorder
	if plot {
		load.Timeline = 100 * time.Millisecond
		loads = recordLoad(load.Timeline, func() (string, error) { return askText(addr, "stats\n") })
	}
	res, err := flood.Run(ctx, load)
	if err != nil {
		return policyRun{}, err
	}
	if res.Wrong > 0 {
		return policyRun{}, fmt.Errorf("%s: %d wrong answers", pol, res.Wrong)
	}
	r := policyRun{rps: res.RPS, p50: us(res.P50), p99: us(res.P99), p999: us(res.P999), shares: map[string]float64{}, answers: res.PerServer}
	var total uint64
	for _, n := range res.PerServer {
		total += n
	}
	for i := range pc.servers {
		r.shares[fmt.Sprintf("s%d", i+1)] = 100 * float64(res.PerServer[fmt.Sprintf("s%d", i+1)]) / float64(max(total, 1))
	}
	if plot {
		path := fmt.Sprintf("%s-%s.png", strings.TrimSuffix(pc.plotPrefix, ".png"), pol)
		title := fmt.Sprintf("udpproxy -policy %s, %d servers, s1 burning %g of a core", pol, pc.servers, pc.burn)
		if err := writePlot(path, plotInput{title: title, res: res, loads: loads.finish()}); err != nil {
			return policyRun{}, err
		}
	}
	return r, nil
}

// printPolicies prints the medians of every round and checks that
// least-load beat round-robin on p99.
func printPolicies(pc policiesConfig, policies, names []string, runs map[string][]policyRun) error {
	med := func(pol string, f func(policyRun) float64) float64 {
		var xs []float64
		for _, r := range runs[pol] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	fmt.Fprintf(pc.out, "\nmedians of %d rounds\n", pc.rounds)
	tw := tabwriter.NewWriter(pc.out, 0, 4, 2, ' ', tabwriter.AlignRight)
	header := "policy\treq/s\tp50 us\tp99 us\tp99.9 us\t"
	for _, n := range names {
		header += "share " + n + "\t"
	}
	fmt.Fprintln(tw, header)
	for _, pol := range policies {
		line := fmt.Sprintf("%s\t%.0f\t%.0f\t%.0f\t%.0f\t", pol, med(pol, func(r policyRun) float64 { return r.rps }),
			med(pol, func(r policyRun) float64 { return r.p50 }), med(pol, func(r policyRun) float64 { return r.p99 }),
			med(pol, func(r policyRun) float64 { return r.p999 }))
		for i := range pc.servers {
			name := fmt.Sprintf("s%d", i+1)
			line += fmt.Sprintf("%.1f%%\t", med(pol, func(r policyRun) float64 { return r.shares[name] }))
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ll, rr := med("least-load", func(r policyRun) float64 { return r.p99 }), med("round-robin", func(r policyRun) float64 { return r.p99 })
	fmt.Fprintf(pc.out, "least-load p99 / round-robin p99: %.2f (below 1: least-load is better)\n", ll/rr)
	if ll >= rr {
		return fmt.Errorf("least-load did not beat round-robin on p99 (%.0f us against %.0f us)", ll, rr)
	}
	return nil
}

// waitForReports waits until the proxy at addr has a report from every one
// of n servers.
func waitForReports(addr string, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if text, err := askText(addr, "stats\n"); err == nil && strings.Count(text, " up host_cpu=") == n {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the proxy at %s did not hear from all %d servers", addr, n)
}
