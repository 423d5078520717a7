package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/discal/discal/bench/flood"
)

// fleetConfig is the -fleet mode: for each fleet size, that many servers
// run as processes (several per process) behind a udpproxy process, with
// -down entries that point where nothing listens, to show how the proxy's
// cost grows with the servers it knows.
type fleetConfig struct {
	sizes   []int
	down    int
	perProc int           // servers per process; 0 picks at most maxFleetProcs processes
	idle    time.Duration // how long the proxy's idle CPU is measured
	load    flood.Config
	asJSON  bool
	out     io.Writer
}

// maxFleetProcs bounds the server processes of one fleet when -per-proc is
// not given: more would only add scheduling noise on a small machine.
const maxFleetProcs = 8

// fleetRow is one fleet size's figures; its JSON keys are part of the
// bench's output contract.
type fleetRow struct {
	Servers     int     `json:"servers"`
	Down        int     `json:"down"`
	Processes   int     `json:"processes"`
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_us"`
	P99         float64 `json:"p99_us"`
	ProxyCPU    float64 `json:"proxy_cpu_us_per_req"`
	ServersCPU  float64 `json:"servers_cpu_us_per_req"`
	ProxyIdle   float64 `json:"proxy_idle_cpu_percent"`
	ServersIdle float64 `json:"servers_idle_cpu_percent"`
	OK          uint64  `json:"ok"`
	Wrong       uint64  `json:"wrong"`
	Errors      uint64  `json:"errors"`
	Timeouts    uint64  `json:"timeouts"`
	Err         string  `json:"error,omitempty"`
}

// parseSizes reads -fleet's comma-separated list of server counts.
func parseSizes(list string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-fleet %q: want positive server counts separated by commas", list)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// perProcess is how many servers each process runs for a fleet of n.
func (fc fleetConfig) perProcess(n int) int {
	if fc.perProc > 0 {
		return fc.perProc
	}
	return (n + maxFleetProcs - 1) / maxFleetProcs
}

// buildForChildren builds udpproxy into a new temporary directory, for a
// mode (fleet, rogue) whose servers are the bench's own binary run again,
// and returns the directory (the caller removes it) and that binary.
func buildForChildren(mode string) (dir, self string, err error) {
	if dir, err = os.MkdirTemp("", "discal-"+mode+"-"); err != nil {
		return "", "", err
	}
	fmt.Fprintf(os.Stderr, "bench: building udpproxy into %s\n", dir)
	if err = goBuild(dir, "./cmd/udpproxy"); err == nil {
		self, err = os.Executable()
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("%s: %w", mode, err)
	}
	return dir, self, nil
}

// runFleet measures each fleet size in turn, each with fresh processes. A
// size that fails (the proxy refusing that many servers, say) is reported
// in its row and the next one still runs; runFleet then returns an error.
func runFleet(ctx context.Context, fc fleetConfig) error {
	dir, self, err := buildForChildren("fleet")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var rows []fleetRow
	var failed []string
	for _, n := range fc.sizes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		row, err := measureFleet(ctx, fc, self, filepath.Join(dir, "udpproxy"), n)
		if err != nil {
			row.Err = err.Error()
			failed = append(failed, fmt.Sprintf("%d servers: %v", n, err))
		}
		rows = append(rows, row)
		if fc.asJSON {
			if err := json.NewEncoder(fc.out).Encode(row); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(os.Stderr, "bench: %d servers + %d down: %.0f req/s\n", n, fc.down, row.RPS)
		}
	}
	if !fc.asJSON {
		if err := printFleet(fc.out, rows); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// measureFleet starts n servers and the proxy, measures the proxy idle,
// then floods it, and stops everything it started.
func measureFleet(ctx context.Context, fc fleetConfig, self, proxyBin string, n int) (fleetRow, error) {
	row := fleetRow{Servers: n, Down: fc.down}
	f, err := startFleet(self, n, fc.perProcess(n))
	defer f.stop()
	if err != nil {
		return row, err
	}
	row.Processes = len(f.procs)
	down, err := closedAddrs(fc.down)
	if err != nil {
		return row, err
	}
	proxy, addr, err := startFleetProxy(proxyBin, append(f.addrs, down...))
	defer stopProcess(proxy)
	if err != nil {
		return row, err
	}
	if err := waitForFleet(ctx, addr.metrics, n, fc.down); err != nil {
		return row, err
	}
	// The idle CPU is the proxy's polling of every server: no load, no
	// scrapes, nothing but its own timers.
	// The servers' idle CPU (their samplers, answering polls) is beside
	// it: on a small machine it takes cores the proxy would use.
	cpu0, srv0 := processCPU(proxy.pid()), serversCPU(f.pids())
	select {
	case <-ctx.Done():
		return row, ctx.Err()
	case <-time.After(fc.idle):
	}
	row.ProxyIdle = 100 * float64(processCPU(proxy.pid())-cpu0) / float64(fc.idle)
	row.ServersIdle = 100 * float64(serversCPU(f.pids())-srv0) / float64(fc.idle)

	load := fc.load
	load.Targets = []string{addr.calc}
	cpu0, srv0 = processCPU(proxy.pid()), serversCPU(f.pids())
	res, err := flood.Run(ctx, load)
	if err != nil {
		return row, err
	}
	cpu, srv := processCPU(proxy.pid())-cpu0, serversCPU(f.pids())-srv0
	row.RPS, row.P50, row.P99 = res.RPS, us(res.P50), us(res.P99)
	row.OK, row.Wrong, row.Errors, row.Timeouts = res.OK, res.Wrong, res.Errors, res.Timeouts
	if answered := float64(res.OK + res.Wrong + res.Errors); answered > 0 {
		row.ProxyCPU, row.ServersCPU = us(cpu)/answered, us(srv)/answered
	}
	if res.Wrong > 0 {
		return row, fmt.Errorf("%d wrong answers", res.Wrong)
	}
	return row, nil
}

func printFleet(w io.Writer, rows []fleetRow) error {
	fmt.Fprintln(w, "CPU from /proc: the proxy's and the servers' (all their processes) per answered request; with no load (the proxy's polling, the servers' sampling), in % of one core")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "servers\tdown\tprocesses\treq/s\tp50 us\tp99 us\tproxy CPU us/req\tservers CPU us/req\tproxy idle\tservers idle\t")
	for _, r := range rows {
		if r.Err != "" && r.OK == 0 {
			fmt.Fprintf(tw, "%d\t%d\t%d\tfailed\t\t\t\t\t\t\t\n", r.Servers, r.Down, r.Processes)
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.1f%%\t%.1f%%\t\n", r.Servers, r.Down, r.Processes,
			r.RPS, r.P50, r.P99, r.ProxyCPU, r.ServersCPU, r.ProxyIdle, r.ServersIdle)
	}
	return tw.Flush()
}

// fleet is the server processes of one fleet size.
type fleet struct {
	procs []*managed
	addrs []string // CALC,STATUS for each server, as udpproxy's -server takes it
}

func (f *fleet) pids() []int {
	pids := make([]int, len(f.procs))
	for i, p := range f.procs {
		pids[i] = p.pid()
	}
	return pids
}

func (f *fleet) stop() {
	for _, p := range f.procs {
		stopProcess(p)
	}
}

// startFleet runs n servers, perProc to a process, named s1 to sN.
func startFleet(self string, n, perProc int) (*fleet, error) {
	f := &fleet{}
	for first := 1; first <= n; first += perProc {
		count := min(perProc, n-first+1)
		p, addrs, err := startServerProcess(self, first, count)
		if err != nil {
			return f, err
		}
		f.procs = append(f.procs, p)
		f.addrs = append(f.addrs, addrs...)
	}
	return f, nil
}

// startServerProcess re-runs the bench's own binary in its server mode
// (fleetChildEnv) and reads the addresses its servers bound.
func startServerProcess(self string, first, count int) (*managed, []string, error) {
	return startChild(self, fmt.Sprintf("%s=%d,%d", fleetChildEnv, first, count), count,
		fmt.Sprintf("server process for s%d-s%d", first, first+count-1))
}

// startChild re-runs the bench's own binary with env, a child mode's
// variable, and reads the count addresses it prints; what names it in
// errors.
func startChild(self, env string, count int, what string) (*managed, []string, error) {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	// The child ends when its standard input does: a bench that dies
	// without stopping it leaves nothing behind.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	m := &managed{cmd: cmd, done: make(chan struct{}), stdin: stdin}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = cmd.Wait()
		close(m.done)
	}()
	addrs, err := readChildAddrs(lines, count)
	if err != nil {
		stopProcess(m)
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	// Nothing more is printed; keep draining in case that changes.
	go func() {
		for range lines {
		}
	}()
	return m, addrs, nil
}

// readChildAddrs reads "serving CALC,STATUS" lines up to "ready".
func readChildAddrs(lines <-chan string, count int) ([]string, error) {
	timeout := time.After(10*time.Second + time.Duration(count)*10*time.Millisecond)
	var addrs []string
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil, errors.New("exited before it was ready")
			}
			if line == "ready" {
				if len(addrs) != count {
					return nil, fmt.Errorf("ready with %d servers of %d", len(addrs), count)
				}
				return addrs, nil
			}
			if a, ok := strings.CutPrefix(line, "serving "); ok {
				addrs = append(addrs, a)
			}
		case <-timeout:
			return nil, errors.New("not ready in time")
		}
	}
}

// closedAddrs returns n server entries where nothing listens: ports that
// were free a moment ago on loopback addresses nothing else uses.
func closedAddrs(n int) ([]string, error) {
	var addrs []string
	for i := range n {
		calc, err := closedPort(i)
		if err != nil {
			return nil, err
		}
		status, err := closedPort(i)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, calc+","+status)
	}
	return addrs, nil
}

// closedPort binds and closes a UDP port on 127.0.0.2-127.0.0.255 (all
// loopback on Linux), so that the client sockets of the bench and proxy,
// on 127.0.0.1, can never take it over.
func closedPort(i int) (string, error) {
	c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.%d:0", 2+i%254))
	if err != nil {
		return "", fmt.Errorf("a closed port for a down server: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

type proxyAddrs struct{ calc, metrics string }

// startFleetProxy runs udpproxy with every entry as a -server, its metrics
// on a free port so that readiness can be read for any number of servers
// (the text stats are cut at one datagram).
func startFleetProxy(bin string, servers []string, extra ...string) (*managed, proxyAddrs, error) {
	var addr proxyAddrs
	var err error
	if addr.calc, err = freeAddr("udp"); err != nil {
		return nil, addr, err
	}
	if addr.metrics, err = freeAddr("tcp"); err != nil {
		return nil, addr, err
	}
	args := []string{"-addr", addr.calc, "-metrics-addr", addr.metrics, "-log-format", "json",
		"-max-servers", strconv.Itoa(len(servers))}
	for _, s := range servers {
		args = append(args, "-server", s)
	}
	args = append(args, extra...)
	p, err := startLogged(bin, `udpproxy serving`, args...)
	return p, addr, err
}

// freeAddr is a loopback address with a port that was free a moment ago.
func freeAddr(network string) (string, error) {
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer l.Close()
		return l.Addr().String(), nil
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}
