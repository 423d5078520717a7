package dashboard_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/discal/discal/bench/flood"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/internal/exclusive"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpproxy/dashboard"
)

// The browser test drives Debian's chromium through chromedp: the page is
// plain JS that only a real browser runs, and chromedp speaks the DevTools
// protocol from Go with no driver binary and no Node, so it runs under
// `go test` like every other test here.

// chromium returns the path of a Chromium or Chrome binary, or skips the
// test.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: the browser tests start chromium and servers as processes and run for a minute or more")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("skipped: no chromium on PATH; install Debian's package with `apt-get install chromium` to run the dashboard in a browser")
	return ""
}

// browser starts a headless chromium with a fresh profile and returns a
// tab's context.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 600),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

var serverUp = regexp.MustCompile(`udpserver serving"? name=(\S+) calc=(\S+) status=(\S+)`)

// startServers builds udpserver and runs n of them as processes, each with
// two cores (GOMAXPROCS=2): servers in one process share one CPU figure, so
// a burden on one would not show as that server's.
func startServers(t *testing.T, n int) []udpproxy.ServerAddr {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "udpserver")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/udpserver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var addrs []udpproxy.ServerAddr
	for i := range n {
		cmd := exec.Command(bin, "-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0",
			"-name", "s"+strconv.Itoa(i+1))
		cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		up := make(chan []string, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if m := serverUp.FindStringSubmatch(sc.Text()); m != nil {
					up <- m
				}
			}
			_, _ = io.Copy(io.Discard, stderr)
			waited <- cmd.Wait()
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-waited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("udpserver %d did not stop on SIGTERM", cmd.Process.Pid)
			}
		})
		select {
		case m := <-up:
			addrs = append(addrs, udpproxy.ServerAddr{Calc: m[2], Status: m[3]})
		case <-time.After(20 * time.Second):
			t.Fatal("udpserver never said it was serving")
		}
	}
	return addrs
}

// load sends a steady 1,500 requests a second through the proxy until the
// test ends: enough for shares to mean something each second, little
// enough for a shared two-core machine.
func load(t *testing.T, proxy string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := flood.Run(ctx, flood.Config{Targets: []string{proxy}, Rate: 1500, Conns: 2, Duration: 2 * time.Minute})
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("load: %v", err)
		}
	})
}

// textCommand sends a text command to a status port and returns the answer.
func textCommand(t *testing.T, addr, cmd string) string {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("%q to %s: %v", cmd, addr, err)
	}
	return strings.TrimSpace(string(buf[:n]))
}

// shares is a page expression: the share each server's row shows, when
// all three servers are up and have one, else null.
const shares = `(() => {
  const rows = [...document.querySelectorAll('#servers tbody tr')];
  if (rows.length !== 3 || rows.some(r => r.dataset.share === '' || r.dataset.state !== 'up')) return null;
  return Object.fromEntries(rows.map(r => [r.dataset.server, +r.dataset.share]));
})()`

// TestBrowser: in chromium, the dashboard of a proxy with three servers
// under load lists the servers; when one is burdened its share falls and
// the others' rise; and "6 * 7" typed in the box shows 42 and the server
// that computed it. With DISCAL_DASHBOARD_SCREENSHOT=FILE it also saves a
// screenshot there, after letting the charts fill for a while.
func TestBrowser(t *testing.T) {
	chrome := chromium(t)
	exclusive.Quiet(t)
	shot := os.Getenv("DISCAL_DASHBOARD_SCREENSHOT")
	servers := startServers(t, 3)
	p, addr := discaltest.StartProxy(t, udpproxy.Config{Servers: servers})
	proxyAddr := addr.String()
	web := httptest.NewServer(dashboard.New(p, proxyAddr))
	t.Cleanup(web.Close)
	load(t, proxyAddr)
	ctx, cancel := context.WithTimeout(browser(t, chrome), 3*time.Minute)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(web.URL+"/")); err != nil {
		t.Fatal(err)
	}
	even := `(s => s && Object.values(s).every(v => v > 0.2) && s)(` + shares + `)`
	before, err := chromedp.Run(ctx, chromedp.Poll[map[string]float64](even, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("the page never showed three servers up sharing the work: %v", err)
	}
	t.Logf("shares before the burn: %v", before)
	if shot != "" {
		waitPolls(t, ctx, 30)
	}
	if got := textCommand(t, servers[0].Status, "burn 0.9"); !strings.HasPrefix(got, "ok: burn") {
		t.Fatalf("burn answered %q", got)
	}
	moved := `(s => s && s.s1 < 0.15 && s.s2 > 0.3 && s.s3 > 0.3 && s)(` + shares + `)`
	after, err := chromedp.Run(ctx, chromedp.Poll[map[string]float64](moved, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("s1's share on the page never fell below 15%% after burn 0.9: %v", err)
	}
	t.Logf("shares after the burn: %v", after)

	calc(t, ctx)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#cpu-chart polyline[data-server="s1"]`)); err != nil {
		t.Fatalf("no CPU line for s1: %v", err)
	}
	if shot != "" {
		screenshot(t, ctx, shot)
	}
}

// calc types 6 * 7 in the box and checks the answer and who computed it.
func calc(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.SendKeys(`#expr`, "6 * 7"), chromedp.Click(`#calc button`)); err != nil {
		t.Fatal(err)
	}
	answered := `document.getElementById('calc-result').textContent !== '…' &&
		document.getElementById('calc-result').textContent !== ''`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](answered, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("no answer shown: %v", err)
	}
	result, err := chromedp.Run(ctx, chromedp.Text(`#calc-result`))
	if err != nil {
		t.Fatal(err)
	}
	by, err := chromedp.Run(ctx, chromedp.Text(`#calc-server`))
	if err != nil {
		t.Fatal(err)
	}
	if result != "42" || !regexp.MustCompile(`computed by s[123] in `).MatchString(by) {
		t.Fatalf("the box shows %q, %q; want 42 computed by s1, s2 or s3", result, by)
	}
	t.Logf("6 * 7 = %s, %s", result, by)
}

// waitPolls waits until the page holds n points, for a screenshot whose
// charts say something.
func waitPolls(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	expr := `+document.body.dataset.polls >= ` + strconv.Itoa(n)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Duration(n+10)*time.Second))); err != nil {
		t.Fatal(err)
	}
}

// screenshot lets the charts show a while of the burden, then saves the
// page as a PNG.
func screenshot(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	waitPolls(t, ctx, 55)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", file)
}

// TestBrowserBadDay: in chromium, the page of a proxy whose servers are all
// draining or dead says so in a degraded banner, in the words /readyz
// uses, and greys the dead server out with the time since its last report
// instead of its stale figures; once no server is left, the banner says
// the proxy is not ready. The header shows the build and the uptime.
func TestBrowserBadDay(t *testing.T) {
	chrome := chromium(t)
	exclusive.CPU(t)
	c, base := badDay(t)
	ctx, cancel := context.WithTimeout(browser(t, chrome), 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	// A few points of CPU for both servers, so that s1 has a line to grey.
	waitPolls(t, ctx, 3)
	build, err := chromedp.Run(ctx, chromedp.Text(`#build`))
	if err != nil || !strings.Contains(build, cli.Build().Version) || !strings.Contains(build, " · up ") {
		t.Fatalf("the header shows %q (%v), want the version %s and an uptime", build, err, cli.Build().Version)
	}
	if got := textCommand(t, c.Servers[1].StatAddr.String(), "drain"); got != "ok: drain" {
		t.Fatalf("drain answered %q", got)
	}
	if err := c.Servers[0].Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, body := httpGet(t, base+"/readyz", `ok, degraded: no server takes new work; serving as a fallback: s2 (draining)`)
	reason := strings.TrimSuffix(strings.TrimPrefix(body, "ok, "), "\n")
	banner := `(() => {
	  const b = document.getElementById('readiness'), s1 = document.querySelector('#servers tr[data-server="s1"]');
	  const line = document.querySelector('#cpu-chart polyline[data-server="s1"]');
	  return !b.hidden && b.className === 'degraded' && b.textContent.startsWith(` + strconv.Quote(reason) + `) &&
	    s1 && s1.className === 'dead' && /no report for/.test(s1.querySelector('td.gone').textContent) &&
	    (!line || line.getAttribute('class') === 'dead') &&
	    getComputedStyle(s1.cells[0]).color === 'rgb(170, 170, 170)';
	})()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](banner, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the page never showed the degraded banner %q and s1 greyed out: %v\n%s", reason, err, pageText(t, ctx))
	}
	t.Logf("degraded: %s", pageText(t, ctx))
	if err := c.Servers[1].Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, body = httpGet(t, base+"/readyz", "not ready: no server in rotation")
	down := `(b => !b.hidden && b.className === 'down' && b.textContent.startsWith(` + strconv.Quote(strings.TrimSpace(body)) + `))(document.getElementById('readiness'))`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](down, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the page never said %q: %v\n%s", body, err, pageText(t, ctx))
	}
}

// httpGet polls url until its body starts with want, for at most ten
// seconds, and returns the code and body.
func httpGet(t *testing.T, url, want string) (int, string) {
	t.Helper()
	var code int
	var body string
	ok := eventually.Within(10*time.Second, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(b)
		return strings.HasPrefix(body, want)
	})
	if !ok {
		t.Fatalf("GET %s = %d %q, want %q", url, code, body, want)
	}
	return code, body
}

// pageText is the header and the table as the page shows them, for a log
// or a failure.
func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.querySelector('header').innerText + '\n' + document.getElementById('servers').innerText`))
	if err != nil {
		return "(cannot read the page: " + err.Error() + ")"
	}
	return s
}
