package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
)

var (
	httpUp  = regexp.MustCompile(`metrics serving"? addr=(\S+)`)
	hangup  = regexp.MustCompile(`got SIGHUP`)
	running = regexp.MustCompile(`discal is running: proxy on (\S+),`)
)

// httpGet returns a GET's status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSIGHUPKeepsServing: SIGHUP, which killed every daemon once, is
// logged and the process goes on answering, twice over; SIGTERM still
// stops it cleanly (start's cleanup checks the exit).
func TestSIGHUPKeepsServing(t *testing.T) {
	srv := start(t, "udpserver", "-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0")
	m := srv.await(t, serverUp)
	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-server", m[2]+","+m[3], "-poll", "50ms")
	proxy := px.await(t, proxyUp)[1]
	dis := start(t, "discal", "-quiet", "-servers", "1", "-addr", "127.0.0.1:0", "-server-port", "0", "-status-port", "0")
	disProxy := dis.await(t, running)[1]
	for _, tc := range []struct {
		name string
		p    *proc
		addr string // where to send work
	}{
		{"udpserver", srv, m[2]},
		{"udpproxy", px, proxy},
		{"discal", dis, disProxy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				if err := tc.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				tc.p.await(t, hangup)
				if got := exchangeText(t, tc.addr, "6 * 7\n"); got != "42\n" {
					t.Fatalf("after SIGHUP: %q", got)
				}
			}
		})
	}
}

// TestHealthEndpoints: /healthz, /readyz and / on the HTTP listener of
// each daemon; a server that drains is not ready, a proxy with no server
// in rotation is not ready, each with a one-line reason. -metrics-addr,
// the old name, opens the same listener.
func TestHealthEndpoints(t *testing.T) {
	srv := start(t, "udpserver", "-quiet", "-name", "h1", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")
	srvHTTP := "http://" + srv.await(t, httpUp)[1]
	m := srv.await(t, serverUp)
	// The proxy's server is one that never answers: no server in rotation.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	deadAddr := dead.LocalAddr().String()
	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-server", deadAddr+","+deadAddr, "-poll", "50ms", "-metrics-addr", "127.0.0.1:0")
	pxHTTP := "http://" + px.await(t, httpUp)[1]
	// A configured server is in rotation until it misses three polls
	// (and the proxy is not ready before it serves).
	eventually.True(t, 10*time.Second, "the proxy stayed ready with a dead server", func() bool {
		_, body := httpGet(t, pxHTTP+"/readyz")
		return body == "not ready: no server in rotation\n"
	})

	for _, tc := range []struct {
		url, body string
		code      int
	}{
		{srvHTTP + "/healthz", "ok\n", 200},
		{srvHTTP + "/readyz", "ok\n", 200},
		{pxHTTP + "/healthz", "ok\n", 200},
		{pxHTTP + "/readyz", "not ready: no server in rotation\n", 503},
	} {
		if code, body := httpGet(t, tc.url); code != tc.code || body != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.url, code, body, tc.code, tc.body)
		}
	}
	for _, base := range []string{srvHTTP, pxHTTP} {
		code, body := httpGet(t, base+"/")
		for _, link := range []string{`href="metrics"`, `href="healthz"`, `href="readyz"`} {
			if code != 200 || !strings.Contains(body, link) {
				t.Errorf("GET %s/ = %d, lacks %s:\n%s", base, code, link, body)
			}
		}
	}
	if got := exchangeText(t, m[3], "drain\n"); got != "ok: drain\n" {
		t.Fatalf("drain: %q", got)
	}
	if code, body := httpGet(t, srvHTTP+"/readyz"); code != 503 || body != "not ready: draining\n" {
		t.Fatalf("a draining server's /readyz = %d %q", code, body)
	}
}

// TestProxyReadyOnceServing: the proxy turns ready when its server's first
// poll is answered.
func TestProxyReadyOnceServing(t *testing.T) {
	srv := start(t, "udpserver", "-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0")
	m := srv.await(t, serverUp)
	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-server", m[2]+","+m[3], "-poll", "50ms", "-http-addr", "127.0.0.1:0")
	pxHTTP := "http://" + px.await(t, httpUp)[1]
	eventually.True(t, 10*time.Second, "the proxy never turned ready", func() bool {
		code, _ := httpGet(t, pxHTTP+"/readyz")
		return code == 200
	})
}

// exitOf runs a binary to completion and returns its exit status.
func exitOf(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin(t, name), args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestUsageExits64: a bad flag value, bad addresses included, is a usage
// error in every daemon: exit 64, before anything is opened.
func TestUsageExits64(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"udpserver", []string{"-addr", "no-port"}},
		{"udpserver", []string{"-status-addr", "127.0.0.1:99999"}},
		{"udpserver", []string{"-http-addr", "nonsense"}},
		{"udpserver", []string{"-name", "has space"}},
		{"udpserver", []string{"extra"}},
		{"udpproxy", []string{"-addr", "127.0.0.1"}},
		{"udpproxy", []string{"-metrics-addr", "127.0.0.1:x"}},
		{"udpproxy", []string{"-policy", "fastest"}},
		{"discal", []string{"-addr", "no-port"}},
		{"discal", []string{"-servers", "0"}},
		{"discal", []string{"-http-addr", ":bad"}},
	} {
		if code, out := exitOf(t, tc.name, tc.args...); code != 64 {
			t.Errorf("%s %v: exit %d, want 64:\n%s", tc.name, tc.args, code, out)
		}
	}
}

// TestProfileWrittenOnFailure: a daemon that fails to start still writes
// its CPU profile out (it exits through run's deferred calls, not past
// them).
func TestProfileWrittenOnFailure(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, name := range []string{"udpserver", "udpproxy"} {
		prof := filepath.Join(t.TempDir(), name+".prof")
		code, out := exitOf(t, name, "-addr", taken.LocalAddr().String(), "-status-addr", "127.0.0.1:0", "-cpuprofile", prof)
		if name == "udpproxy" {
			code, out = exitOf(t, name, "-addr", taken.LocalAddr().String(), "-cpuprofile", prof)
		}
		if code != 1 {
			t.Errorf("%s on a taken port: exit %d, want 1:\n%s", name, code, out)
		}
		if st, err := os.Stat(prof); err != nil || st.Size() == 0 {
			t.Errorf("%s: profile %v, %v: not written", name, st, err)
		}
	}
}
