package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
	"golang.org/x/sys/unix"

	"github.com/discal/discal/internal/testbin"
)

// TestLinkLocalServer runs a server reachable only by an IPv6 link-local
// address, the way two hosts on one link find each other with no
// configuration: the proxy and the server each in a network namespace of
// their own, joined by one veth, the server named with its zone. The
// server must take the proxy's polls (its -allow fe80::/10 holds a source
// that carries a zone) and the proxy must take the server's replies (their
// source is the server's address on that interface). Real processes; the
// test talks to the proxy from a socket it opens in the proxy's namespace.
func TestLinkLocalServer(t *testing.T) {
	ns := newLinkPair(t)
	srv := ns.run(t, "s", bin(t, "udpserver"), "-quiet", "-name", "ll",
		"-addr", "[fe80::2%ll1]:7001", "-status-addr", "[fe80::2%ll1]:7101", "-allow", "fe80::/10")
	srv.await(t, serverUp)
	px := ns.run(t, "p", bin(t, "udpproxy"), "-addr", "127.0.0.1:7000",
		"-server", "[fe80::2%ll0]:7001,[fe80::2%ll0]:7101")
	px.await(t, proxyUp)

	c := ns.dial(t, "p", "127.0.0.1:7000")
	// The server is up on its own report, which only a poll the server
	// answered gives. (A fresh veth may lose the first datagrams while its
	// link comes up: wait for the report, then ask.)
	var stats string
	up := func() bool {
		stats = ask(t, c, "stats\n")
		return strings.Contains(stats, "\nll [fe80::2%ll0]:7001 up host_cpu=")
	}
	if !eventually.Within(10*time.Second, up) {
		t.Fatalf("the server has not reported through its link-local status port:\n%s", stats)
	}
	for i := range 20 {
		if got, want := ask(t, c, fmt.Sprintf("%d * 3\n", i)), fmt.Sprintf("%d\n", 3*i); got != want {
			t.Fatalf("%d * 3: got %q, want %q", i, got, want)
		}
	}
	// Every reply of the server's was taken as its own: none was dropped
	// as forged, so every try was answered. (A status reply that came
	// after its poll timed out while the link came up may count as a
	// drop; that is not what this checks.)
	stats = ask(t, c, "stats\n")
	if !strings.Contains(stats, " sent=20 answered=20 timeouts=0 ") {
		t.Fatalf("the proxy did not take every reply of the server's (forged?):\n%s", stats)
	}
}

// linkPair is two network namespaces, p and s, joined by a veth whose ends
// are ll0 (fe80::1, in p) and ll1 (fe80::2, in s), with loopback up in
// both. Names start with netpath- and a random part, so that runs and
// other tests cannot collide.
type linkPair struct{ prefix string }

func newLinkPair(t *testing.T) *linkPair {
	t.Helper()
	testbin.SkipShort(t) // before the namespaces: every test on them runs the binaries
	if os.Geteuid() != 0 {
		t.Skip("the link-local test needs root, for network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the link-local test needs iproute2's ip command")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	l := &linkPair{prefix: "netpath-" + hex.EncodeToString(b[:])}
	if err := ipCmd("netns", "add", l.ns("p")); err != nil {
		t.Skipf("cannot make network namespaces here: %v", err)
	}
	t.Cleanup(func() {
		_ = ipCmd("netns", "del", l.ns("p"))
		_ = ipCmd("netns", "del", l.ns("s"))
	})
	p, s := l.ns("p"), l.ns("s")
	for _, args := range [][]string{
		{"netns", "add", s},
		{"-n", p, "link", "add", "ll0", "type", "veth", "peer", "name", "ll1", "netns", s},
		// nodad: the addresses are usable at once, not after duplicate
		// address detection's second or so.
		{"-n", p, "addr", "add", "fe80::1/64", "dev", "ll0", "nodad"},
		{"-n", s, "addr", "add", "fe80::2/64", "dev", "ll1", "nodad"},
		{"-n", p, "link", "set", "ll0", "up"},
		{"-n", s, "link", "set", "ll1", "up"},
		{"-n", p, "link", "set", "lo", "up"},
		{"-n", s, "link", "set", "lo", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *linkPair) ns(name string) string { return l.prefix + "-" + name }

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// run starts a binary in namespace name. It uses the hosts helper's way of
// starting and reading a process.
func (l *linkPair) run(t *testing.T, name, binary string, args ...string) *proc {
	t.Helper()
	h := &hosts{t: t, prefix: l.prefix}
	return h.run(name, binary, args...)
}

// dial opens a UDP socket in namespace name, connected to addr there. A
// socket belongs to the namespace it was made in, whatever thread uses it
// later: it is made on a thread of its own that enters the namespace and
// is then thrown away, so no other goroutine ever runs in it.
func (l *linkPair) dial(t *testing.T, name, addr string) *net.UDPConn {
	t.Helper()
	type result struct {
		c   *net.UDPConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + l.ns(name))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("setns %s: %w", l.ns(name), err)}
			return
		}
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			done <- result{err: err}
			return
		}
		c, err := net.DialUDP("udp", nil, a)
		done <- result{c, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// ask sends one text line on c and returns the answer.
func ask(t *testing.T, c *net.UDPConn, line string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	for range 3 { // UDP: a lost datagram is asked again
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no answer to %q", line)
	return ""
}
