package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/internal/testbin"
	"go.uber.org/goleak"
)

// images are the commands the Dockerfile builds and copies to /.
var images = []string{"udpserver", "udpproxy", "udpclient"}

// bins are the binaries the image holds, built once as the Dockerfile
// builds them: static, CGO_ENABLED=0, -trimpath.
var bins = &testbin.Set{Pkgs: imagePkgs(), Args: []string{"-trimpath"}, Env: []string{"CGO_ENABLED=0"}}

func imagePkgs() []string {
	var pkgs []string
	for _, c := range images {
		pkgs = append(pkgs, "../cmd/"+c)
	}
	return pkgs
}

// TestMain removes the binaries after the tests, and fails them for a
// goroutine left running (a process's log reader, a poll).
func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func bin(t *testing.T, name string) string {
	t.Helper()
	return bins.Path(t, name)
}

var (
	flagLine  = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	flagCache sync.Map // binary name → map[string]bool
)

// flagsOf returns the flags a binary's -h lists.
func flagsOf(t *testing.T, name string) map[string]bool {
	t.Helper()
	if f, ok := flagCache.Load(name); ok {
		return f.(map[string]bool)
	}
	out, err := exec.Command(bin(t, name), "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -h: %v\n%s", name, err, out)
	}
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("%s -h lists %d flags:\n%s", name, len(flags), out)
	}
	flagCache.Store(name, flags)
	return flags
}

// proc is a running binary; cleanup stops it with SIGTERM, by PID, unless
// it has exited, and fails the test unless it exits 0.
type proc struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed once the process has exited, err set
	err   error         // Wait's: nil for exit 0
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, bin(t, name), args...)
}

// startCmd is start for any command: path with args, called name.
func startCmd(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		if err := p.wait(15 * time.Second); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	return p
}

// running says whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits up to limit for the process to exit and returns how: nil for
// exit 0. It kills a process still running at the limit.
func (p *proc) wait(limit time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not exit within %v: killed", limit)
	}
}

// get fetches a URL and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(bytes.TrimSpace(b))
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// repoFile reads a file at the repository's root.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goSource is every non-test Go file of the packages that export metrics.
func goSource(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, dir := range []string{"udpproxy", "udpserver", "internal/cli"} {
		files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(src)
		}
	}
	return b.String()
}
