package deploy

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	serverUp = regexp.MustCompile(`udpserver serving"? name=(\S+) calc=(\S+) status=(\S+)`)
	proxyUp  = regexp.MustCompile(`udpproxy serving"? addr=(\S+)`)
	httpUp   = regexp.MustCompile(`(?:metrics|http)[^"]*serving"? addr=(\S+)`)
)

// awaitAll reads the log until every regexp has matched a line, in any
// order, and returns their submatches.
func (p *proc) awaitAll(t *testing.T, res ...*regexp.Regexp) [][]string {
	t.Helper()
	got := make([][]string, len(res))
	deadline := time.After(20 * time.Second)
	for missing := len(res); missing > 0; {
		select {
		case l := <-p.lines:
			for i, re := range res {
				if m := re.FindStringSubmatch(l); got[i] == nil && m != nil {
					got[i], missing = m, missing-1
				}
			}
		case <-deadline:
			t.Fatalf("%s did not log all of %v", p.cmd.Path, res)
		}
	}
	return got
}

// awaitStatus asks url until it answers with the status code, for at most
// ten seconds (the proxy's first poll, the server's drain).
func awaitStatus(t *testing.T, url string, code int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, body := get(t, url)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d", url, got, body, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probePaths reads the paths the manifests probe, so this test follows them.
func probePaths(t *testing.T, component string) (ready, live string) {
	t.Helper()
	c := containerOf(t, loadLayout(t).deployment(t, component))
	if c.c.ReadinessProbe == nil || c.c.ReadinessProbe.HTTPGet == nil || c.c.LivenessProbe == nil || c.c.LivenessProbe.HTTPGet == nil {
		t.Fatalf("%s: HTTP probes missing", c.where)
	}
	return c.c.ReadinessProbe.HTTPGet.Path, c.c.LivenessProbe.HTTPGet.Path
}

// TestProbesServed runs the binaries with -http-addr and asks the paths
// the manifests probe: a server is ready until it drains; a proxy is ready
// once a server is in rotation, and not while it has none.
func TestProbesServed(t *testing.T) {
	ready, live := probePaths(t, "server")
	srv := start(t, "udpserver", "-quiet", "-name", "k1", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")
	m := srv.awaitAll(t, serverUp, httpUp)
	calc, status, srvHTTP := m[0][2], m[0][3], "http://"+m[1][1]
	awaitStatus(t, srvHTTP+live, 200)
	awaitStatus(t, srvHTTP+ready, 200)
	if code, body := get(t, srvHTTP+"/metrics"); code != 200 || !strings.Contains(body, "discal_server_requests_total") {
		t.Errorf("server /metrics: %d", code)
	}

	pready, plive := probePaths(t, "proxy")
	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-poll", "50ms", "-server", calc+","+status, "-http-addr", "127.0.0.1:0")
	pxHTTP := "http://" + px.awaitAll(t, proxyUp, httpUp)[1][1]
	awaitStatus(t, pxHTTP+plive, 200)
	awaitStatus(t, pxHTTP+pready, 200)

	// A proxy whose one server never answers is alive and not ready.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	lone := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-poll", "50ms",
		"-server", dead.LocalAddr().String()+","+dead.LocalAddr().String(), "-http-addr", "127.0.0.1:0")
	loneHTTP := "http://" + lone.awaitAll(t, proxyUp, httpUp)[1][1]
	awaitStatus(t, loneHTTP+plive, 200)
	if body := awaitStatus(t, loneHTTP+pready, 503); body == "" {
		t.Error("a proxy that is not ready says no reason")
	}

	// A draining server is not ready: Kubernetes takes it out of the
	// Service (and so out of the SRV records) while it finishes its work.
	conn, err := net.Dial("udp", status)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("drain\n")); err != nil {
		t.Fatal(err)
	}
	awaitStatus(t, srvHTTP+ready, 503)
	awaitStatus(t, srvHTTP+live, 200)
}

// askText sends one request in the text form on conn and returns the
// answer's line, or an error when none came within the limit.
func askText(conn net.Conn, line string, limit time.Duration) (string, error) {
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	if err := conn.SetReadDeadline(time.Now().Add(limit)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// TestProxyDrainGrace: after SIGTERM a proxy with -drain-grace says 503 on
// /readyz at once and goes on answering every request until the grace is
// over; then it stops with 0. What Kubernetes needs to move clients away
// before the port closes: nothing sent during the drain is lost.
func TestProxyDrainGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built binaries through a drain of seconds; skipped under -short")
	}
	ready, live := probePaths(t, "proxy")
	srv := start(t, "udpserver", "-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0")
	m := srv.awaitAll(t, serverUp)
	const grace = 5 * time.Second
	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-poll", "50ms", "-server", m[0][2]+","+m[0][3],
		"-http-addr", "127.0.0.1:0", "-drain-grace", grace.String())
	up := px.awaitAll(t, proxyUp, httpUp)
	pxHTTP := "http://" + up[1][1]
	awaitStatus(t, pxHTTP+ready, 200)
	conn, err := net.Dial("udp", up[0][1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	if body := awaitStatus(t, pxHTTP+ready, 503); !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %q, want it to say draining", body)
	}
	awaitStatus(t, pxHTTP+live, 200) // alive: a liveness probe must not restart it now
	// Requests sent while not ready are all answered, right.
	const n = 200
	for i := range n {
		got, err := askText(conn, fmt.Sprintf("%d * 7", i), 2*time.Second)
		if err != nil || got != strconv.Itoa(i*7) {
			t.Fatalf("request %d of %d, %v after SIGTERM: %q, %v; want %d", i+1, n, time.Since(signalled), got, err, i*7)
		}
	}
	if !px.running() {
		t.Fatalf("the proxy exited before its grace of %v was over", grace)
	}
	if err := px.wait(grace + 15*time.Second); err != nil {
		t.Fatalf("the proxy after its grace: %v, want exit 0", err)
	}
	if took := time.Since(signalled); took < grace {
		t.Errorf("the proxy stopped %v after SIGTERM, before its grace of %v", took, grace)
	}
}
