package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
)

// TestSIGTERMDrainsProxy: SIGTERM to a udpproxy process with requests
// pending at a slow server: it takes no new ones, answers those pending,
// and exits cleanly.
func TestSIGTERMDrainsProxy(t *testing.T) {
	// A slow server in this process: it answers every request after 150 ms
	// (the proxy waits up to 2 s per try, so it never retries).
	var received atomic.Int64
	slow := discaltest.StartFake(t, discaltest.FakeConfig{
		Name: "slow", Delay: 150 * time.Millisecond, Status: &codec.Status{Server: "slow", Cores: 1},
		Answer: func(req discaltest.Request) (codec.Reply, bool) {
			received.Add(1)
			return discaltest.Compute("slow", req), true
		},
	})
	cmd := launch(t, "udpproxy", "-addr", "127.0.0.1:0", "-try-timeout", "2s",
		"-server", slow.CalcAddr.String()+","+slow.StatusAddr.String())
	proxy := cmd.await(t, proxyUp)[1]
	client, err := net.Dial("udp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	const n = 50
	for i := range n {
		if _, err := client.Write(codec.AppendRequest(nil, uint64(i), codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})); err != nil {
			t.Fatal(err)
		}
	}
	// The scenario: SIGTERM once the 50 have reached the slow server, while
	// they are pending at the proxy.
	if !eventually.Within(5*time.Second, func() bool { return received.Load() >= n }) {
		t.Fatalf("the slow server received %d of %d requests", received.Load(), n)
	}
	if err := cmd.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	answered := 0
	buf := make([]byte, 1024)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for answered < n {
		k, err := client.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d answered after SIGTERM: %v", answered, n, err)
		}
		if r, err := codec.DecodeReply(buf[codec.HeaderSize:k]); err != nil || !r.Result.Equal(codec.IntNumber(42)) {
			t.Fatalf("reply %+v, %v", r, err)
		}
		answered++
	}
	if err := <-cmd.waited; err != nil {
		t.Fatalf("udpproxy exited with %v after SIGTERM", err)
	}
}

// TestSIGTERMFinishesServer: SIGTERM to a udpserver in the middle of a
// burst: every request it took in is answered (its operation log, written
// out on the way, says which), and it exits cleanly.
func TestSIGTERMFinishesServer(t *testing.T) {
	p := launch(t, "udpserver", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-name", "s1")
	addr := p.await(t, serverUp)[2]
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.UDPConn).SetReadBuffer(4 << 20)
	const n = 3000
	for i := range n {
		// Once the server has gone, writes fail (ICMP refusals): fine.
		_, _ = c.Write(codec.AppendRequest(nil, uint64(i), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(int64(i)), B: codec.IntNumber(1)}))
		if i == n/2 {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	got := 0
	buf := make([]byte, 1024)
	for {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // a refusal reported on this socket, not an answer
			}
			break
		}
		got++
	}
	if err := <-p.waited; err != nil {
		t.Fatalf("udpserver exited with %v", err)
	}
	logged := strings.Count(p.stdout.String(), " = ")
	t.Logf("%d requests sent, %d taken in before the server stopped, %d answered", n, logged, got)
	if logged == 0 || got != logged {
		t.Fatalf("the server logged %d operations but %d answers arrived", logged, got)
	}
}

// launch starts a binary for a test that stops it itself; cleanup only
// makes sure it is gone.
func launch(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return launchEnv(t, nil, name, args...)
}

// launchEnv is launch with extra environment variables.
func launchEnv(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{stdout: new(lockedBuffer), lines: make(chan string, 1000), waited: make(chan error, 1)}
	p.cmd = exec.Command(bin(t, name), args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout = p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		scanLines(stderr, p.lines)
		p.waited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Logf("kill: %v", err)
		}
	})
	return p
}
