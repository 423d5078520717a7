package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/testbin"
)

// bins are the four binaries and the bench, built once for all tests.
var bins = &testbin.Set{Pkgs: []string{"../cmd/...", "../bench"}}

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

func bin(t *testing.T, name string) string {
	t.Helper()
	return bins.Path(t, name)
}

// proc is a started binary whose output the test can read.
type proc struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	lines  chan string // stderr, line by line
	waited chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs a binary; cleanup stops it with SIGTERM, by its PID, and
// expects a clean exit.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, name, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin(t, name), args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &proc{cmd: cmd, stdout: new(lockedBuffer), lines: make(chan string, 1000), waited: make(chan error, 1)}
	cmd.Stdout = p.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		scanLines(stderr, p.lines)
		p.waited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.waited:
			if err != nil {
				t.Errorf("%s exited with %v", name, err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not stop on SIGTERM", name)
		}
	})
	return p
}

// scanLines passes a process's output on, line by line, dropping lines
// when nobody reads them.
func scanLines(r io.Reader, lines chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		default:
		}
	}
}

// await reads stderr until a line matches re and returns its submatches.
func (p *proc) await(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("%s never logged %v", p.cmd.Path, re)
		}
	}
}

var (
	serverUp = regexp.MustCompile(`udpserver serving"? name=(\S+) calc=(\S+) status=(\S+)`)
	proxyUp  = regexp.MustCompile(`udpproxy serving"? addr=(\S+)`)
)

type system struct {
	proxy   string
	proxyP  *proc
	servers []*proc
	calc    []string
	status  []string
}

// startSystem runs three udpservers and a udpproxy, all on ports the
// kernel picks, learnt from what each process logs when it is ready.
func startSystem(t *testing.T) *system {
	t.Helper()
	return startSystemEnv(t, nil)
}

// startSystemEnv is startSystem with extra environment variables for every
// process.
func startSystemEnv(t *testing.T, env []string) *system {
	t.Helper()
	s := &system{}
	args := []string{"-poll", "50ms"}
	for i := range 3 {
		flags := []string{"-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-name", fmt.Sprintf("s%d", i+1)}
		p := startEnv(t, env, "udpserver", flags...)
		m := p.await(t, serverUp)
		s.servers = append(s.servers, p)
		s.calc = append(s.calc, m[2])
		s.status = append(s.status, m[3])
		args = append(args, "-server", m[2]+","+m[3])
	}
	px := startEnv(t, env, "udpproxy", append(args, "-addr", "127.0.0.1:0")...)
	s.proxy = px.await(t, proxyUp)[1]
	s.proxyP = px
	return s
}

// client runs udpclient to completion and returns its output and status.
func client(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "udpclient"), args...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func TestProcessesClient(t *testing.T) {
	s := startSystem(t)
	tests := []struct {
		name           string
		args           []string
		stdin          string
		stdout, stderr string
		code           int
	}{
		{"add", []string{"2", "+", "3"}, "", "5\n", "", 0},
		{"inexact division", []string{"7", "/", "2"}, "", "3.5\n", "", 0},
		{"one argument", []string{"6 * 7"}, "", "42\n", "", 0},
		{"prefix", []string{"mul", "-6", "7"}, "", "-42\n", "", 0},
		{"negative first operand after --", []string{"--", "-3", "-", "4"}, "", "-7\n", "", 0},
		{"verbose names the server", []string{"-v", "add", "2", "3"}, "", "5 (server s", "", 0},
		{"division by zero", []string{"1", "/", "0"}, "", "", "error: division by zero\n", 1},
		{"overflow", []string{"9223372036854775807", "+", "1"}, "", "", "error: integer overflow\n", 1},
		{"bad expression", []string{"2", "+"}, "", "", "syntax error", 64},
		{"unknown flag", []string{"-frobnicate", "1+1"}, "", "", "flag provided but not defined", 64},
		{"lines from stdin", nil, "1 + 1\n2 * 3\n\n7 / 2\n1 / 0\n10 - 20\n", "2\n6\n\n3.5\nerror: division by zero\n-10\n", "", 1},
		{"all lines answered", nil, "1 + 1\nsub 5 3\n", "2\n2\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-proxy", s.proxy}, tt.args...)
			out, errOut, code := client(t, tt.stdin, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out, errOut)
			}
			if !strings.HasPrefix(out, tt.stdout) || (tt.stdout == "" && out != "") {
				t.Errorf("stdout %q, want %q", out, tt.stdout)
			}
			if !strings.Contains(errOut, tt.stderr) || (tt.stderr == "" && errOut != "") {
				t.Errorf("stderr %q, want %q", errOut, tt.stderr)
			}
		})
	}

	// No proxy there: no answer after the retries, exit 2.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	out, errOut, code := client(t, "", "-proxy", dead.LocalAddr().String(), "-timeout", "50ms", "-retries", "2", "1", "+", "1")
	if want := "error: no answer from " + dead.LocalAddr().String() + " after 3 tries\n"; code != 2 || out != "" || errOut != want {
		t.Fatalf("no proxy: exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, want)
	}
}

// exchangeText sends one datagram as `printf ... | nc -u -w1 HOST PORT`
// would, and returns the answer.
func exchangeText(t *testing.T, addr, text string) string {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, text); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %q from %s: %v", text, addr, err)
	}
	return string(buf[:n])
}

func TestProcessesText(t *testing.T) {
	s := startSystem(t)
	for _, tt := range []struct{ addr, in, want string }{
		{s.proxy, "6 * 7\n", "42\n"},
		{s.proxy, "7 / 2\n", "3.5\n"},
		{s.proxy, "add 2 3\n", "5\n"},
		{s.proxy, "1 / 0\n", "error: division by zero\n"},
		{s.calc[0], "6 * 7\n", "42\n"},
		{s.calc[1], "div 1 0\n", "error: division by zero\n"},
	} {
		if got := exchangeText(t, tt.addr, tt.in); got != tt.want {
			t.Errorf("%q to %s: got %q, want %q", tt.in, tt.addr, got, tt.want)
		}
	}
	status := exchangeText(t, s.status[2], "status\n")
	if !strings.HasPrefix(status, "server=s3 host_cpu=") || !strings.HasSuffix(status, "\n") || strings.Count(status, "\n") != 1 {
		t.Errorf("status line %q", status)
	}
	stats := exchangeText(t, s.proxy, "stats\n")
	if !strings.HasPrefix(stats, "proxy policy=least-load") || strings.Count(stats, "\n") != 4 {
		t.Errorf("proxy stats %q", stats)
	}

	// Every server logs its operations on its console, one line each.
	for i := range 40 {
		exchangeText(t, s.proxy, fmt.Sprintf("%d + 1000\n", i))
	}
	logged := 0
	if !eventually.Within(10*time.Second, func() bool { // the log flushes every 100 ms
		logged = 0
		for _, p := range s.servers {
			logged += strings.Count(p.stdout.String(), "\n")
		}
		return logged >= 40+3
	}) {
		t.Fatalf("servers logged %d operations, want at least 43", logged)
	}
	all := s.servers[0].stdout.String() + s.servers[1].stdout.String() + s.servers[2].stdout.String()
	if !regexp.MustCompile(`(?m) s\d id=[0-9a-f]{16} 39 \+ 1000 = 1039$`).MatchString(all) {
		t.Errorf("no log line for 39 + 1000 in:\n%s", all)
	}
}

// TestNetcat uses the real nc when the machine has it, exactly as the
// README shows.
func TestNetcat(t *testing.T) {
	nc, err := exec.LookPath("nc")
	if err != nil {
		t.Skip("nc is not installed; TestProcessesText sends the same datagrams")
	}
	s := startSystem(t)
	host, port, _ := net.SplitHostPort(s.proxy)
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`printf '6 * 7\n' | %s -u -w1 %s %s`, nc, host, port))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nc: %v", err)
	}
	if string(out) != "42\n" {
		t.Fatalf("nc printed %q, want 42", out)
	}
}

// TestDiscal runs the one-process system the README starts with: it
// serves, logs each operation under its server's name, and stops cleanly
// on Ctrl-C (SIGINT).
func TestDiscal(t *testing.T) {
	cmd := exec.Command(bin(t, "discal"), "-servers", "2", "-addr", "127.0.0.1:0", "-server-port", "0", "-status-port", "0")
	out := new(lockedBuffer)
	cmd.Stdout = out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`discal is running: proxy on (\S+),`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		waited <- cmd.Wait()
	}()
	var proxy string
	select {
	case proxy = <-ready:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("discal did not say where it runs")
	}
	for i := range 20 {
		if got, want := exchangeText(t, proxy, fmt.Sprintf("%d * 2\n", i)), fmt.Sprintf("%d\n", 2*i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("discal exited with %v after Ctrl-C", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("discal did not stop on Ctrl-C")
	}
	// The operation log is flushed on the way out: every operation is in
	// it, under s1 or s2.
	log := out.String()
	if n := len(regexp.MustCompile(`(?m) s[12] id=[0-9a-f]{16} \d+ \* 2 = \d+$`).FindAllString(log, -1)); n != 20 {
		t.Fatalf("the log has %d operation lines, want 20:\n%s", n, log)
	}
}

// TestEveryBinaryConveniences: -version, flags from the environment and
// JSON logs, for every binary.
func TestEveryBinaryConveniences(t *testing.T) {
	for _, name := range []string{"udpserver", "udpproxy", "udpclient", "discal"} {
		out, err := exec.Command(bin(t, name), "-version").Output() // standard output alone
		if err != nil || !strings.HasPrefix(string(out), name+" discal ") || strings.Count(string(out), "\n") != 1 {
			t.Errorf("%s -version: %v, %q; want one line on standard output", name, err, out)
		}
		out, err = exec.Command(bin(t, name), "-h").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Examples:") || !strings.Contains(string(out), "DISCAL_") {
			t.Errorf("%s -h: %v, %q", name, err, out)
		}
	}
	// Addresses from the environment, logs as JSON.
	p := launchEnv(t, []string{"DISCAL_ADDR=127.0.0.1:0", "DISCAL_STATUS_ADDR=127.0.0.1:0", "DISCAL_QUIET=true"},
		"udpserver", "-log-format", "json", "-name", "envy")
	line := p.await(t, regexp.MustCompile(`^\{.*"msg":"udpserver serving".*\}$`))[0]
	var rec struct {
		Name, Calc string
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Name != "envy" || !strings.HasPrefix(rec.Calc, "127.0.0.1:") {
		t.Fatalf("log line %q: %+v, %v", line, rec, err)
	}
	if got := exchangeText(t, rec.Calc, "2+2\n"); got != "4\n" {
		t.Fatalf("got %q", got)
	}
}

// TestMetricsEndpoint: udpserver and udpproxy with -metrics-addr serve
// Prometheus text at /metrics, with the figures of the work they did.
func TestMetricsEndpoint(t *testing.T) {
	metricsUp := regexp.MustCompile(`metrics serving"? addr=(\S+)`)
	srv := start(t, "udpserver", "-quiet", "-name", "m1", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0")
	srvMetrics := srv.await(t, metricsUp)[1]
	m := srv.await(t, serverUp)
	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-server", m[2]+","+m[3], "-metrics-addr", "127.0.0.1:0")
	pxMetrics := px.await(t, metricsUp)[1]
	proxy := px.await(t, proxyUp)[1]
	eventually.True(t, 10*time.Second, "no report from the server", func() bool { // until the server's first report names it
		return strings.Contains(exchangeText(t, proxy, "stats\n"), "\nm1 ")
	})
	for range 10 {
		exchangeText(t, proxy, "6 * 7\n")
	}
	get := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if body := get(srvMetrics); !regexp.MustCompile(`(?m)^discal_server_operations_total\{op="mul",server="m1"\} 10$`).MatchString(body) {
		t.Errorf("the server's metrics lack 10 multiplications:\n%s", grepLines(body, "discal_"))
	}
	if body := get(pxMetrics); !regexp.MustCompile(`(?m)^discal_proxy_requests_total 10$`).MatchString(body) ||
		!strings.Contains(body, `discal_proxy_server_up{addr="`+m[2]+`",server="m1"} 1`) {
		t.Errorf("the proxy's metrics at %s:\n%s", pxMetrics, body)
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
