package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/internal/testbin"
)

// hosts builds test hosts out of network namespaces: one namespace holds a
// bridge, and each host gets a namespace of its own with a veth whose other
// end is on the bridge. Nothing touches the machine's own network. It needs
// root and iproute2; the test says so and skips without them.
type hosts struct {
	t      *testing.T
	prefix string // unique per run, so that runs cannot collide
	subnet string // "10.231.7" — the hosts are .2, .11, ...
}

func newHosts(t *testing.T) *hosts {
	t.Helper()
	testbin.SkipShort(t) // before the namespaces: every test on them runs the binaries
	if os.Geteuid() != 0 {
		t.Skip("the multi-host test needs root, for network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the multi-host test needs iproute2's ip command")
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	h := &hosts{t: t, prefix: "dc" + hex.EncodeToString(b[:]), subnet: fmt.Sprintf("10.231.%d", b[0])}
	if err := h.ip("netns", "add", h.ns("br")); err != nil {
		t.Skipf("cannot make network namespaces here: %v", err)
	}
	t.Cleanup(h.cleanup)
	h.must("-n", h.ns("br"), "link", "add", "br0", "type", "bridge")
	h.must("-n", h.ns("br"), "link", "set", "br0", "up")
	return h
}

func (h *hosts) ns(name string) string { return h.prefix + "-" + name }

func (h *hosts) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (h *hosts) must(args ...string) {
	h.t.Helper()
	if err := h.ip(args...); err != nil {
		h.t.Fatal(err)
	}
}

// add makes a host named name with address subnet.last and returns it.
func (h *hosts) add(name string, last int) string {
	h.t.Helper()
	ns, veth := h.ns(name), "v"+h.prefix[2:]+name // at most 15 characters
	h.must("netns", "add", ns)
	h.must("-n", h.ns("br"), "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	h.must("-n", h.ns("br"), "link", "set", veth, "master", "br0", "up")
	h.must("-n", ns, "addr", "add", fmt.Sprintf("%s.%d/24", h.subnet, last), "dev", "eth0")
	h.must("-n", ns, "link", "set", "eth0", "up")
	h.must("-n", ns, "link", "set", "lo", "up")
	return fmt.Sprintf("%s.%d", h.subnet, last)
}

// cut takes a host's link down at the bridge, as if its cable were pulled.
func (h *hosts) cut(name string) {
	h.t.Helper()
	h.must("-n", h.ns("br"), "link", "set", "v"+h.prefix[2:]+name, "down")
}

// run starts a binary inside a host's namespace.
func (h *hosts) run(host, binary string, args ...string) *proc {
	h.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns(host), binary}, args...)...)
	p := &proc{cmd: cmd, stdout: new(lockedBuffer), lines: make(chan string, 1000), waited: make(chan error, 1)}
	cmd.Stdout = p.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		scanLines(stderr, p.lines)
		p.waited <- cmd.Wait()
	}()
	// ip netns exec execs the binary: this PID is the binary's.
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.waited
	})
	return p
}

func (h *hosts) cleanup() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(line, " "); strings.HasPrefix(name, h.prefix+"-") {
			_ = h.ip("netns", "del", name)
		}
	}
}

// TestSeveralHosts puts the proxy, three servers and a client each on a
// host of its own, on one network, running the real binaries; cutting one
// server host's link in the middle of a flood loses no request.
func TestSeveralHosts(t *testing.T) {
	h := newHosts(t)
	proxyIP := h.add("proxy", 2)
	h.add("client", 3)
	var servers []string
	for i := range 3 {
		name := fmt.Sprintf("s%d", i+1)
		ip := h.add(name, 11+i)
		p := h.run(name, bin(t, "udpserver"), "-quiet", "-name", name, "-addr", ip+":7001", "-status-addr", ip+":7101",
			"-allow", proxyIP)
		p.await(t, serverUp)
		servers = append(servers, "-server", ip+":7001,"+ip+":7101")
	}
	px := h.run("proxy", bin(t, "udpproxy"), append(servers, "-addr", proxyIP+":7000")...)
	px.await(t, proxyUp)

	// The load comes from the bench binary on the client host.
	bench := h.run("client", bin(t, "bench"), "-target", proxyIP+":7000", "-d", "5s", "-c", "64",
		"-timeout", "500ms", "-retries", "4", "-json", "-no-progress")
	time.Sleep(2 * time.Second) // the scenario: two seconds into the flood
	h.cut("s2")
	t.Logf("cut s2's link at the bridge")
	select {
	case err := <-bench.waited:
		bench.waited <- err // for cleanup
		if err != nil {
			t.Fatalf("bench: %v\n%s", err, bench.stdout.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the bench did not finish")
	}
	var res struct {
		Sent, OK, Wrong, Errors, Timeouts uint64
		PerServer                         map[string]uint64 `json:"per_server"`
	}
	if err := json.Unmarshal([]byte(bench.stdout.String()), &res); err != nil {
		t.Fatalf("bench output: %v\n%s", err, bench.stdout.String())
	}
	t.Logf("sent %d, ok %d, per server %v", res.Sent, res.OK, res.PerServer)
	if res.Sent == 0 || res.OK != res.Sent || res.Wrong+res.Errors+res.Timeouts != 0 {
		t.Fatalf("sent %d, ok %d, wrong %d, errors %d, timeouts %d: requests were lost", res.Sent, res.OK, res.Wrong, res.Errors, res.Timeouts)
	}
	if res.PerServer["s2"] == 0 {
		t.Fatal("s2 never served: the cut proved nothing")
	}
}
