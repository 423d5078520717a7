package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
)

var served = regexp.MustCompile(` served=(\d+) `)

// TestKillServerMidFlood: kill -9 of one of three server processes during
// a 5-second flood loses no request (the proxy's retry on another server
// and the client's retries cover it), the proxy takes the server out within
// 3 poll intervals, and the server, started again, gets work again.
func TestKillServerMidFlood(t *testing.T) {
	exclusive.CPU(t)
	// A long poll interval, so that "within 3 intervals" is a statement
	// about the proxy's schedule (3 missed polls, the second and third
	// sent as soon as the one before is missed: about 2.25 intervals at
	// worst) and not about how promptly a busy test machine runs timers.
	const poll = 250 * time.Millisecond
	s := &system{}
	var args []string
	var victim *exec.Cmd
	var victimArgs []string
	for i := range 3 {
		name := fmt.Sprintf("s%d", i+1)
		flags := []string{"-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-name", name}
		if i == 1 {
			// The victim runs outside start(), whose cleanup expects a
			// clean exit: this one is killed. Its ports are its own
			// (kept, not ephemeral), so that nothing else takes them
			// while it is down and it starts again on them.
			flags = []string{"-quiet", "-addr", keptAddr(t), "-status-addr", keptAddr(t), "-name", name}
			cmd := exec.Command(bin(t, "udpserver"), flags...)
			p := &proc{cmd: cmd, stdout: new(lockedBuffer), lines: make(chan string, 100), waited: make(chan error, 1)}
			calc, status := runAndAwait(t, p)
			victim, victimArgs = cmd, []string{"-quiet", "-addr", calc, "-status-addr", status, "-name", name}
			s.calc, s.status = append(s.calc, calc), append(s.status, status)
			args = append(args, "-server", calc+","+status)
			continue
		}
		p := start(t, "udpserver", flags...)
		m := p.await(t, serverUp)
		s.calc, s.status = append(s.calc, m[2]), append(s.status, m[3])
		args = append(args, "-server", m[2]+","+m[3])
	}
	px := start(t, "udpproxy", append(args, "-addr", "127.0.0.1:0", "-poll", poll.String())...)
	s.proxy = px.await(t, proxyUp)[1]
	waitReported(t, s.proxy, "reports from every server", func(map[string]float64) bool { return true })

	cfg := flood.Config{Targets: []string{s.proxy}, InFlight: 32, Duration: 5 * time.Second,
		Timeout: 300 * time.Millisecond, Retries: 3, Timeline: 100 * time.Millisecond}
	done := make(chan *flood.Result, 1)
	go func() {
		res, err := flood.Run(context.Background(), cfg)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()

	time.Sleep(1500 * time.Millisecond) // the scenario: a second and a half into the flood
	killed := time.Now()
	if err := victim.Process.Kill(); err != nil { // SIGKILL, by PID
		t.Fatal(err)
	}
	_ = victim.Wait()
	var out time.Duration
	s2Down := regexp.MustCompile(`(?m)^s2 \S+ down`)
	eventually.True(t, 5*time.Second, "the proxy to take the killed server out", func() bool {
		down := s2Down.MatchString(exchangeText(t, s.proxy, "stats\n"))
		out = time.Since(killed)
		return down
	})
	t.Logf("the killed server left the rotation %v after kill -9", out.Round(time.Millisecond))
	if out > 3*poll {
		t.Errorf("it took %v, more than 3 poll intervals (%v)", out, 3*poll)
	}

	// Start it again on the same ports: it gets work again. Any request
	// served shows the proxy routes to it (the test's own status queries
	// are not counted); the flood has seconds left to give it more.
	again := start(t, "udpserver", victimArgs...)
	again.await(t, serverUp)
	restarted := time.Now()
	n := 0
	eventually.True(t, 3*time.Second, "the restarted server to get work", func() bool {
		n, _ = strconv.Atoi(served.FindStringSubmatch(exchangeText(t, s.status[1], "status\n"))[1])
		return n > 0
	})
	t.Logf("the restarted server had served %d requests %v after it started", n, time.Since(restarted).Round(time.Millisecond))

	res := <-done
	if res.OK != res.Sent || res.Timeouts != 0 || res.Errors != 0 || res.Wrong != 0 {
		t.Fatalf("sent %d, ok %d, timeouts %d, errors %d, wrong %d: requests were lost", res.Sent, res.OK, res.Timeouts, res.Errors, res.Wrong)
	}
	t.Logf("%d requests, all answered right; %d retransmitted by the bench", res.Sent, res.Retransmits)
}

// keptAddr is an address on 127.0.0.1 at a port of the test's own
// (discaltest.KeptAddr), for a server that is stopped and started again.
func keptAddr(t *testing.T) string {
	t.Helper()
	a, err := discaltest.KeptAddr(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}

// runAndAwait starts p and returns the calculator and status addresses it
// logs when ready.
func runAndAwait(t *testing.T, p *proc) (calc, status string) {
	t.Helper()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill() }) // by PID; harmless once it has exited
	go scanLines(stderr, p.lines)
	m := p.await(t, serverUp)
	return m[2], m[3]
}

// TestSIGTERMServerMidFlood: SIGTERM to one of three server processes
// during a flood: it reports draining, the proxy stops sending it work,
// it stops cleanly, and no request is lost or even retried by the client.
func TestSIGTERMServerMidFlood(t *testing.T) {
	exclusive.CPU(t)
	s := startSystem(t)
	waitReported(t, s.proxy, "reports from every server", func(map[string]float64) bool { return true })
	cfg := flood.Config{Targets: []string{s.proxy}, InFlight: 32, Duration: 3 * time.Second, Timeout: time.Second, Retries: 3}
	done := make(chan *flood.Result, 1)
	go func() {
		res, err := flood.Run(context.Background(), cfg)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	time.Sleep(time.Second) // the scenario: a second into the flood
	victim := s.servers[1]
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sawDraining := false
	s2Draining, s2Down := regexp.MustCompile(`(?m)^s2 \S+ draining`), regexp.MustCompile(`(?m)^s2 \S+ down`)
	eventually.True(t, 10*time.Second, "the proxy to see the server go", func() bool {
		text := exchangeText(t, s.proxy, "stats\n")
		sawDraining = sawDraining || s2Draining.MatchString(text)
		return s2Down.MatchString(text)
	})
	if !sawDraining {
		t.Error("the proxy never saw the server draining before it went")
	}
	select {
	case err := <-victim.waited:
		victim.waited <- err // for cleanup
		if err != nil {
			t.Fatalf("the server exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
	res := <-done
	if res.OK != res.Sent || res.Timeouts+res.Errors+res.Wrong != 0 || res.Retransmits != 0 {
		t.Fatalf("sent %d, ok %d, timeouts %d, errors %d, wrong %d, retransmits %d", res.Sent, res.OK, res.Timeouts, res.Errors, res.Wrong, res.Retransmits)
	}
}
