package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			stopProcess(p)
		}
	}()

	var serverTargets, proxyArgs []string
	for i := range cc.servers {
		calc := fmt.Sprintf("127.0.0.1:%d", cc.basePort+1+i)
		status := fmt.Sprintf("127.0.0.1:%d", cc.basePort+101+i)
		p, err := startLogged(filepath.Join(dir, "udpserver"), `udpserver serving`,
			"-quiet", "-name", fmt.Sprintf("s%d", i+1), "-addr", calc, "-status-addr", status)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		serverTargets = append(serverTargets, calc)
		proxyArgs = append(proxyArgs, "-server", calc+","+status)
	}
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", cc.basePort)
	proxy, err := startLogged(filepath.Join(dir, "udpproxy"), `udpproxy serving`, append(proxyArgs, "-addr", proxyAddr)...)
	if err != nil {
		return err
	}
	procs = append(procs, proxy)

	hopAddr := fmt.Sprintf("127.0.0.1:%d", cc.basePort+40)
	hop, err := startLogged(filepath.Join(dir, "hop"), `hop serving`, "-addr", hopAddr, "-servers", strings.Join(serverTargets, ","))
	if err != nil {
		return err
	}
	procs = append(procs, hop)

	contenders := []*contender{
		{name: "direct", target: serverTargets},
		{name: "udpproxy", target: []string{proxyAddr}, pid: proxy.Process.Pid},
		{name: "hop (forwarding only)", target: []string{hopAddr}, pid: hop.Process.Pid},
	}
	nginx, why := findNginx(cc.out)
	if nginx == "" {
		fmt.Fprintf(cc.out, "nginx: skipped: %s\n", why)
	} else {
		for i, v := range nginxVariants {
			port := cc.basePort + 50 + i
			p, err := startNginx(nginx, dir, v, port, serverTargets)
			if err != nil {
				fmt.Fprintf(cc.out, "nginx %s: skipped: %v\n", v.name, err)
				continue
			}
			procs = append(procs, p)
			contenders = append(contenders, &contender{name: "nginx " + v.name,
				target: []string{fmt.Sprintf("127.0.0.1:%d", port)}, pid: p.Process.Pid})
		}
	}

	// A short warm-up for each, so that first-run effects do not land on
	// whoever goes first.
	for _, c := range contenders {
		warm := cc.load
		warm.Targets, warm.Duration, warm.Requests = c.target, 500*time.Millisecond, 0
		if _, err := flood.Run(ctx, warm); err != nil {
			return err
		}
	}
	for round := 1; round <= cc.rounds; round++ {
		for _, c := range contenders {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			load := cc.load
			load.Targets = c.target
			cpu0 := processCPU(c.pid)
			res, err := flood.Run(ctx, load)
			if err != nil {
				return err
			}
			cpu := processCPU(c.pid) - cpu0
			answered := float64(res.OK + res.Wrong + res.Errors)
			run := compareRun{rps: res.RPS, p50: us(res.P50), p99: us(res.P99), wrong: res.Wrong}
			if c.pid != 0 && answered > 0 {
				run.cpuPerReq = cpu.Seconds() * 1e6 / answered
			}
			c.runs = append(c.runs, run)
			fmt.Fprintf(cc.out, "round %d  %-22s %9.0f req/s  p50 %6.0fus  p99 %6.0fus", round, c.name, run.rps, run.p50, run.p99)
			if c.pid != 0 {
				fmt.Fprintf(cc.out, "  proxy CPU %.2f us/req", run.cpuPerReq)
			}
			if res.Timeouts+res.Errors+res.Wrong > 0 {
				fmt.Fprintf(cc.out, "  (timeouts %d errors %d wrong %d)", res.Timeouts, res.Errors, res.Wrong)
			}
			fmt.Fprintln(cc.out)
		}
	}
	return printComparison(cc.out, contenders)
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
	fmt.Fprintln(tw, "\treq/s\tvs direct\tp50 us\tp99 us\tproxy CPU us/req\t")
	for _, c := range cs {
		rps := field(c, func(r compareRun) float64 { return r.rps })
		cpu := "-"
		if c.pid != 0 {
			cpu = fmt.Sprintf("%.2f", field(c, func(r compareRun) float64 { return r.cpuPerReq }))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2fx\t%.0f\t%.0f\t%s\t\n", c.name, rps, rps/direct,
			field(c, func(r compareRun) float64 { return r.p50 }), field(c, func(r compareRun) float64 { return r.p99 }), cpu)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if bestNginx != nil {
		fmt.Fprintf(w, "udpproxy / best nginx (%s): %.2fx\n", bestNginx.name, rps(cs[1])/rps(bestNginx))
	}
	if hop != nil {
		fmt.Fprintf(w, "udpproxy / hop: %.2fx (the hop is the bound for any proxy here)\n", rps(cs[1])/rps(hop))
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
func startLogged(path, ready string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	re := regexp.MustCompile(ready)
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && re.MatchString(sc.Text()) {
				seen = true
				found <- true
			}
		}
		if !seen {
			found <- false
		}
	}()
	select {
	case ok := <-found:
		if ok {
			return cmd, nil
		}
	case <-time.After(10 * time.Second):
	}
	stopProcess(cmd)
	return nil, fmt.Errorf("%s %s did not start", filepath.Base(path), strings.Join(args, " "))
}

// stopProcess ends a process this run started, by its PID: SIGTERM, then
// SIGKILL if it lingers.
func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// processCPU is the user+system CPU time of a process and its children
// (nginx's workers are children of its master).
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return 0
	}
	var total float64
	if t, err := p.Times(); err == nil {
		total += t.User + t.System
	}
	if kids, err := p.Children(); err == nil {
		for _, k := range kids {
			if t, err := k.Times(); err == nil {
				total += t.User + t.System
			}
		}
	}
	return time.Duration(total * float64(time.Second))
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
			cmd := exec.Command("apt-get", "install", "-y", "-q", "nginx-light", "libnginx-mod-stream")
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
func startNginx(nginx, dir string, v nginxVariant, port int, servers []string) (*exec.Cmd, error) {
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
	// nginx says nothing when it is ready: wait until its port answers a
	// text request, which it forwards to a server.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if textAnswers(fmt.Sprintf("127.0.0.1:%d", port)) {
			return cmd, nil
		}
	}
	stopProcess(cmd)
	logText, _ := os.ReadFile(filepath.Join(dir, name+".log"))
	return nil, errors.New("nginx did not answer: " + strings.TrimSpace(string(logText)))
}
