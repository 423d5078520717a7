package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/shirou/gopsutil/v3/process"
)

// compareConfig is the -compare mode: the same servers and the same load,
// straight to the servers, through udpproxy and through nginx's UDP stream
// proxy, alternating, with medians and ratios at the end.
type compareConfig struct {
	rounds   int
	servers  int
	basePort int
	load     flood.Config // Duration, InFlight, Conns, Timeout, Retries
	out      io.Writer
}

// A contender is one way to reach the servers.
type contender struct {
	name   string
	target []string
	pid    int // the process whose CPU counts as proxy CPU (with its children); 0 for none
	runs   []compareRun
}

type compareRun struct {
	rps, p50, p99 float64
	cpuPerReq     float64 // microseconds of proxy CPU per answered request
	serverCPU     float64 // microseconds of the servers' CPU per answered request
	benchCPU      float64 // microseconds of the load generator's CPU per answered request
	wrong         uint64
}

func runCompare(ctx context.Context, cc compareConfig) error {
	dir, err := os.MkdirTemp("", "discal-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(cc.out, "building udpserver, udpproxy and hop into %s\n", dir)
	if err := goBuild(dir, "./cmd/udpserver", "./cmd/udpproxy", "./bench/hop"); err != nil {
		return err
	}
	var procs processes
	defer procs.stop()
	contenders, serverPIDs, err := startContenders(cc, dir, &procs)
	if err != nil {
		return err
	}
	fmt.Fprintln(cc.out, "CPU per answered request from /proc: the proxy's (nginx: master and workers), the three servers', and the bench's own")
	// A short warm-up for each, so that first-run effects do not land on
	// whoever goes first.
	for _, c := range contenders {
		warm := cc.load
		warm.Targets, warm.Duration, warm.Requests = c.target, 500*time.Millisecond, 0
		if _, err := flood.Run(ctx, warm); err != nil {
			return err
		}
	}
	// Each round takes the contenders in a new random order, so that none
	// always runs right after the same other one.
	order := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 1; round <= cc.rounds; round++ {
		turn := slices.Clone(contenders)
		order.Shuffle(len(turn), func(i, j int) { turn[i], turn[j] = turn[j], turn[i] })
		for _, c := range turn {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := runContender(ctx, cc, round, c, serverPIDs); err != nil {
				return err
			}
		}
	}
	return printComparison(cc.out, contenders)
}

// processes is what a mode started, to stop on the way out.
type processes []*managed

func (ps *processes) add(p *managed) { *ps = append(*ps, p) }

func (ps *processes) stop() {
	for _, p := range *ps {
		stopProcess(p)
	}
}

// startContenders starts the servers, the proxy, hop and the nginx
// variants that can run, and returns the contenders with the servers' PIDs.
func startContenders(cc compareConfig, dir string, procs *processes) ([]*contender, []int, error) {
	var serverTargets, proxyArgs []string
	var serverPIDs []int
	for i := range cc.servers {
		calc := fmt.Sprintf("127.0.0.1:%d", cc.basePort+1+i)
		status := fmt.Sprintf("127.0.0.1:%d", cc.basePort+101+i)
		p, err := startLogged(filepath.Join(dir, "udpserver"), `udpserver serving`,
			"-quiet", "-name", fmt.Sprintf("s%d", i+1), "-addr", calc, "-status-addr", status)
		if err != nil {
			return nil, nil, err
		}
		procs.add(p)
		serverPIDs = append(serverPIDs, p.pid())
		serverTargets = append(serverTargets, calc)
		proxyArgs = append(proxyArgs, "-server", calc+","+status)
	}
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", cc.basePort)
	proxy, err := startLogged(filepath.Join(dir, "udpproxy"), `udpproxy serving`, append(proxyArgs, "-addr", proxyAddr)...)
	if err != nil {
		return nil, nil, err
	}
	procs.add(proxy)
	hopAddr := fmt.Sprintf("127.0.0.1:%d", cc.basePort+40)
	hop, err := startLogged(filepath.Join(dir, "hop"), `hop serving`, "-addr", hopAddr, "-servers", strings.Join(serverTargets, ","))
	if err != nil {
		return nil, nil, err
	}
	procs.add(hop)
	contenders := []*contender{
		{name: "direct", target: serverTargets},
		{name: "udpproxy", target: []string{proxyAddr}, pid: proxy.pid()},
		{name: "hop (forwarding only)", target: []string{hopAddr}, pid: hop.pid()},
	}
	return append(contenders, startNginxes(cc, dir, serverTargets, procs)...), serverPIDs, nil
}

// startNginxes starts each nginx variant that can run; it says why one
// cannot and goes on without it.
func startNginxes(cc compareConfig, dir string, servers []string, procs *processes) []*contender {
	nginx, why := findNginx(cc.out)
	if nginx == "" {
		fmt.Fprintf(cc.out, "nginx: skipped: %s\n", why)
		return nil
	}
	var cs []*contender
	for i, v := range nginxVariants {
		port := cc.basePort + 50 + i
		p, err := startNginx(nginx, dir, v, port, servers)
		if err != nil {
			fmt.Fprintf(cc.out, "nginx %s: skipped: %v\n", v.name, err)
			continue
		}
		procs.add(p)
		cs = append(cs, &contender{name: "nginx " + v.name, target: []string{fmt.Sprintf("127.0.0.1:%d", port)}, pid: p.pid()})
	}
	return cs
}

// runContender floods one contender once, records the run and prints it.
func runContender(ctx context.Context, cc compareConfig, round int, c *contender, serverPIDs []int) error {
	load := cc.load
	load.Targets = c.target
	cpu0, srv0 := processCPU(c.pid), serversCPU(serverPIDs)
	res, err := flood.Run(ctx, load)
	if err != nil {
		return err
	}
	cpu, srv := processCPU(c.pid)-cpu0, serversCPU(serverPIDs)-srv0
	answered := float64(res.OK + res.Wrong + res.Errors)
	run := compareRun{rps: res.RPS, p50: us(res.P50), p99: us(res.P99), wrong: res.Wrong}
	if answered > 0 {
		run.serverCPU = us(srv) / answered
		run.benchCPU = us(res.CPU) / answered
		if c.pid != 0 {
			run.cpuPerReq = us(cpu) / answered
		}
	}
	c.runs = append(c.runs, run)
	fmt.Fprintf(cc.out, "round %d  %-36s %9.0f req/s  p50 %6.0fus  p99 %6.0fus  CPU us/req: servers %.2f bench %.2f",
		round, c.name, run.rps, run.p50, run.p99, run.serverCPU, run.benchCPU)
	if c.pid != 0 {
		fmt.Fprintf(cc.out, " proxy %.2f", run.cpuPerReq)
	}
	if res.Timeouts+res.Errors+res.Wrong > 0 {
		fmt.Fprintf(cc.out, "  (timeouts %d errors %d wrong %d)", res.Timeouts, res.Errors, res.Wrong)
	}
	fmt.Fprintln(cc.out)
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func field(c *contender, f func(compareRun) float64) float64 {
	xs := make([]float64, len(c.runs))
	for i, r := range c.runs {
		xs[i] = f(r)
	}
	return median(xs)
}

func printComparison(w io.Writer, cs []*contender) error {
	rps := func(c *contender) float64 { return field(c, func(r compareRun) float64 { return r.rps }) }
	direct := rps(cs[0])
	var bestNginx, hop *contender
	for _, c := range cs {
		if strings.HasPrefix(c.name, "nginx") && (bestNginx == nil || rps(c) > rps(bestNginx)) {
			bestNginx = c
		}
		if strings.HasPrefix(c.name, "hop") {
			hop = c
		}
	}
	fmt.Fprintf(w, "\nmedians of %d rounds\n", len(cs[0].runs))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\treq/s\tvs direct\tp50 us\tp99 us\tCPU us/req: proxy\tservers\tbench\tall\t")
	for _, c := range cs {
		rps := rps(c)
		proxyCPU := field(c, func(r compareRun) float64 { return r.cpuPerReq })
		srv := field(c, func(r compareRun) float64 { return r.serverCPU })
		bench := field(c, func(r compareRun) float64 { return r.benchCPU })
		cpu := "-"
		if c.pid != 0 {
			cpu = fmt.Sprintf("%.2f", proxyCPU)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2fx\t%.0f\t%.0f\t%s\t%.2f\t%.2f\t%.2f\t\n", c.name, rps, rps/direct,
			field(c, func(r compareRun) float64 { return r.p50 }), field(c, func(r compareRun) float64 { return r.p99 }),
			cpu, srv, bench, proxyCPU+srv+bench)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if bestNginx != nil {
		fmt.Fprintf(w, "udpproxy / best nginx (%s): %.2fx\n", bestNginx.name, rps(cs[1])/rps(bestNginx))
	}
	if hop != nil {
		fmt.Fprintf(w, "udpproxy / hop: %.2fx (hop forwards and does nothing else: a reference for what a hop costs here)\n", rps(cs[1])/rps(hop))
	}
	for _, c := range cs {
		for _, r := range c.runs {
			if r.wrong > 0 {
				return fmt.Errorf("%s gave %d wrong answers", c.name, r.wrong)
			}
		}
	}
	return nil
}

// goBuild builds packages of this module into dir.
func goBuild(dir string, pkgs ...string) error {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("-compare builds udpserver and udpproxy from source: run it inside the discal module (go run ./bench -compare): %w", err)
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = strings.TrimSpace(string(root))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// startLogged starts a binary and waits until its standard error shows
// ready, a regular expression.
func startLogged(path, ready string, args ...string) (*managed, error) {
	return startLoggedEnv(nil, path, ready, args...)
}

// startLoggedEnv is startLogged with extra environment variables.
func startLoggedEnv(env []string, path, ready string, args ...string) (*managed, error) {
	cmd := exec.Command(path, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &managed{cmd: cmd, done: make(chan struct{})}
	re := regexp.MustCompile(ready)
	found := make(chan bool, 1)
	var last string // the last line before exiting, to say why it did not start
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			if !seen && re.MatchString(sc.Text()) {
				seen = true
				found <- true
			}
			if !seen {
				last = sc.Text()
			}
		}
		if !seen {
			found <- false
		}
		_ = cmd.Wait()
		close(m.done)
	}()
	select {
	case ok := <-found:
		if ok {
			return m, nil
		}
		// It exited: last is written and no longer changes.
		stopProcess(m)
		return nil, fmt.Errorf("%s did not start: %s", filepath.Base(path), strings.TrimSpace(last))
	case <-time.After(10 * time.Second):
	}
	stopProcess(m)
	return nil, fmt.Errorf("%s did not start in 10s", filepath.Base(path))
}

// managed is a process this run started, with its Wait already running,
// so that its exit can be noticed at any time.
type managed struct {
	cmd   *exec.Cmd
	done  chan struct{}  // closed when the process has exited
	stdin io.WriteCloser // closed on stop when set: some children end with their input
}

func (m *managed) pid() int { return m.cmd.Process.Pid }

// stopProcess ends a process this run started, by its PID: SIGTERM, then
// SIGKILL if it lingers.
func stopProcess(m *managed) {
	if m == nil {
		return
	}
	_ = m.cmd.Process.Signal(os.Interrupt)
	if m.stdin != nil {
		_ = m.stdin.Close()
	}
	done := m.done
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
}

// processCPU is the user+system CPU time of a process and its children
// (nginx's workers are children of its master), read from /proc.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	total := procTimes(pid)
	for _, kid := range childrenOf(pid) {
		total += procTimes(kid)
	}
	return total
}

// serversCPU sums processCPU over the servers.
func serversCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		total += processCPU(pid)
	}
	return total
}

// procTimes is utime+stime from /proc/PID/stat.
func procTimes(pid int) time.Duration {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return 0
	}
	t, err := p.Times()
	if err != nil {
		return 0
	}
	return time.Duration((t.User + t.System) * float64(time.Second))
}

// childrenOf lists a process's children from /proc/PID/task/*/children,
// without depending on pgrep.
func childrenOf(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(field); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// nginxVariant is one nginx configuration to try; the comparison is against
// the best.
type nginxVariant struct {
	name      string
	workers   int
	responses bool // proxy_responses 1: each request is its own session
}

var nginxVariants = []nginxVariant{
	{name: "2 workers", workers: 2},
	{name: "1 worker", workers: 1},
	{name: "2 workers, proxy_responses 1", workers: 2, responses: true},
}

// findNginx returns the nginx binary with its stream module, installing the
// Debian packages when they are missing and this process may (root,
// apt-get); otherwise it says why not.
func findNginx(log io.Writer) (path, why string) {
	const module = "/usr/lib/nginx/modules/ngx_stream_module.so"
	have := func() bool {
		_, err := exec.LookPath("nginx")
		_, merr := os.Stat(module)
		return err == nil && merr == nil
	}
	if !have() {
		if os.Geteuid() != 0 {
			return "", "nginx or its stream module is missing, and installing needs root"
		}
		if _, err := exec.LookPath("apt-get"); err != nil {
			return "", "nginx or its stream module is missing, and there is no apt-get"
		}
		fmt.Fprintln(log, "installing nginx and libnginx-mod-stream with apt-get")
		install := func() error {
			cmd := exec.Command("apt-get", "install", "-y", "-q", "nginx", "libnginx-mod-stream")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			return cmd.Run()
		}
		if install() != nil {
			_ = exec.Command("apt-get", "update", "-q").Run()
			if err := install(); err != nil {
				return "", "apt-get install nginx libnginx-mod-stream failed: " + err.Error()
			}
		}
		if !have() {
			return "", "nginx installed but its stream module is not at " + module
		}
	}
	p, _ := exec.LookPath("nginx")
	return p, ""
}

// startNginx writes a config for one variant into dir and runs nginx in the
// foreground (daemon off), so that it is stopped by the PID it started with.
func startNginx(nginx, dir string, v nginxVariant, port int, servers []string) (*managed, error) {
	name := fmt.Sprintf("nginx-%d", port)
	var b strings.Builder
	fmt.Fprintf(&b, "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n")
	fmt.Fprintf(&b, "worker_processes %d;\ndaemon off;\npid %s/%s.pid;\nerror_log %s/%s.log warn;\n", v.workers, dir, name, dir, name)
	fmt.Fprintf(&b, "events { worker_connections 65536; }\nstream {\n  upstream calc {\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s;\n", s)
	}
	fmt.Fprintf(&b, "  }\n  server {\n    listen 127.0.0.1:%d udp reuseport;\n    proxy_pass calc;\n    proxy_timeout 10s;\n", port)
	if v.responses {
		fmt.Fprintf(&b, "    proxy_responses 1;\n")
	}
	fmt.Fprintf(&b, "  }\n}\n")
	conf := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(nginx, "-c", conf, "-p", dir, "-e", filepath.Join(dir, name+".log"))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &managed{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	// nginx says nothing when it is ready: wait until its port answers a
	// text request, which it forwards to a server, or until it exits.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if textAnswers(fmt.Sprintf("127.0.0.1:%d", port)) {
			return m, nil
		}
		select {
		case <-m.done:
			logText, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			return nil, errors.New("nginx exited: " + strings.TrimSpace(string(logText)))
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopProcess(m)
	logText, _ := os.ReadFile(filepath.Join(dir, name+".log"))
	return nil, errors.New("nginx did not answer: " + strings.TrimSpace(string(logText)))
}
