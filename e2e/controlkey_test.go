package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
	"golang.org/x/sys/unix"
)

// TestControlKeyNetns is the attack of docs/security.md's threat model, on
// hosts in network namespaces: a proxy, two servers that join it, and an
// attacker on the same network who never sees a packet meant for anyone
// else. The attacker forges the proxy's address as the source of a drain
// (a raw socket with IP_HDRINCL), and a join from inside -join-allow.
// Without -control-key the drain takes a server out of rotation and the
// forged join is listed; with it both are refused and counted, the server
// stays in rotation and every client request is answered, a replayed
// sealed drain is refused too, and the real proxy host's udpclient drains
// and undrains the server with the key.
func TestControlKeyNetns(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(map[bool]string{false: "no key", true: "key"}[keyed], func(t *testing.T) {
			c := startControlHosts(t, keyed)
			c.attack(t)
			if keyed {
				c.replay(t)
				c.operate(t)
			}
		})
	}
}

type controlHosts struct {
	*hosts
	keyed   bool
	keyFile string
	key     []byte
	proxyIP string
	servers []string     // the servers' addresses, s1 and s2
	stats   *net.UDPConn // to the proxy's client port on loopback, from the proxy's host
	status  *net.UDPConn // to s1's status port, from the proxy's host
	metrics string       // the proxy's -http-addr, inside its namespace
	raw     int          // the attacker's raw socket
}

func startControlHosts(t *testing.T, keyed bool) *controlHosts {
	h := newHosts(t)
	// The issue names these namespaces key-...: they are told apart from
	// other tests' by their prefix.
	var b [2]byte
	_, _ = rand.Read(b[:])
	h.cleanup() // newHosts made its bridge under its own prefix; start afresh under ours
	h.prefix = "key-" + hex.EncodeToString(b[:1])
	h.must("netns", "add", h.ns("br"))
	h.must("-n", h.ns("br"), "link", "add", "br0", "type", "bridge")
	h.must("-n", h.ns("br"), "link", "set", "br0", "up")
	c := &controlHosts{hosts: h, keyed: keyed, metrics: "127.0.0.1:9107"}
	c.proxyIP = h.add("proxy", 2)
	attacker := h.add("atk", 66)
	var keyArgs []string
	if keyed {
		c.keyFile = filepath.Join(t.TempDir(), "control.key")
		if out, err := exec.Command(bin(t, "udpserver"), "-gen-key", c.keyFile).CombinedOutput(); err != nil {
			t.Fatalf("udpserver -gen-key: %v: %s", err, out)
		}
		var err error
		if c.key, err = os.ReadFile(c.keyFile); err != nil {
			t.Fatal(err)
		}
		keyArgs = []string{"-control-key", c.keyFile}
	}
	// All interfaces: "stats" is answered on loopback only.
	px := h.run("proxy", bin(t, "udpproxy"), append([]string{"-addr", "0.0.0.0:7000", "-join-allow", h.subnet + ".0/24",
		"-poll", "100ms", "-http-addr", c.metrics}, keyArgs...)...)
	px.await(t, proxyUp)
	for i := range 2 {
		name := fmt.Sprintf("s%d", i+1)
		ip := h.add(name, 11+i)
		p := h.run(name, bin(t, "udpserver"), append([]string{"-quiet", "-name", name, "-addr", ip + ":7001",
			"-status-addr", ip + ":7101", "-join", c.proxyIP + ":7000", "-join-interval", "200ms"}, keyArgs...)...)
		p.await(t, serverUp)
		c.servers = append(c.servers, ip)
	}
	c.stats = c.dialIn(t, "proxy", "127.0.0.1:7000")
	c.status = c.dialIn(t, "proxy", c.servers[0]+":7101")
	c.waitRotation(t, 2, "the servers never joined")
	c.raw = c.rawIn(t, "atk")
	t.Logf("proxy %s, servers %v, attacker %s, key %v", c.proxyIP, c.servers, attacker, keyed)
	return c
}

// inNS runs fn on a thread of its own that enters host's namespace; the
// thread is thrown away after, so no other goroutine ever runs there. A
// socket made in fn stays in that namespace.
func (c *controlHosts) inNS(t *testing.T, host string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + c.ns(host))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", c.ns(host), err)
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func (c *controlHosts) dialIn(t *testing.T, host, addr string) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	c.inNS(t, host, func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err == nil {
			conn, err = net.DialUDP("udp", nil, a)
		}
		return err
	})
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawIn opens a raw IPv4 socket in host's namespace, on which the caller
// writes whole IP packets, source address included (IP_HDRINCL).
func (c *controlHosts) rawIn(t *testing.T, host string) int {
	t.Helper()
	fd := -1
	c.inNS(t, host, func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW); err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
	})
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// forge sends payload in a UDP datagram from src to dst, which the
// attacker's kernel sends as it is: the receiver sees src as its source.
func (c *controlHosts) forge(t *testing.T, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	pkt := make([]byte, 28, 28+len(payload))
	pkt[0] = 0x45 // IPv4, a 20-byte header
	binary.BigEndian.PutUint16(pkt[2:], uint16(28+len(payload)))
	pkt[8] = 64 // TTL
	pkt[9] = unix.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(pkt[12:], s4[:])
	copy(pkt[16:], d4[:])
	binary.BigEndian.PutUint16(pkt[20:], src.Port())
	binary.BigEndian.PutUint16(pkt[22:], dst.Port())
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload))) // UDP checksum 0: none, allowed in IPv4
	pkt = append(pkt, payload...)
	// The kernel fills in the IP checksum and the packet ID.
	if err := unix.Sendto(c.raw, pkt, 0, &unix.SockaddrInet4{Addr: d4}); err != nil {
		t.Fatalf("forged send: %v", err)
	}
}

var (
	inRotationRe = regexp.MustCompile(`in_rotation=(\d+)`)
	serversRe    = regexp.MustCompile(` servers=(\d+)`)
)

func (c *controlHosts) proxyStats(t *testing.T) (servers, inRotation int) {
	t.Helper()
	line := ask(t, c.stats, "stats")
	a, b := serversRe.FindStringSubmatch(line), inRotationRe.FindStringSubmatch(line)
	if a == nil || b == nil {
		t.Fatalf("stats %q", line)
	}
	servers, _ = strconv.Atoi(a[1])
	inRotation, _ = strconv.Atoi(b[1])
	return servers, inRotation
}

func (c *controlHosts) waitRotation(t *testing.T, n int, why string) {
	t.Helper()
	eventually.True(t, 15*time.Second, why, func() bool { _, r := c.proxyStats(t); return r == n })
}

// serverLine is s1's status line, asked from the proxy's host.
func (c *controlHosts) serverLine(t *testing.T) string {
	t.Helper()
	return ask(t, c.status, "status")
}

// unauthenticated is the proxy's count of joins refused for their seal.
func (c *controlHosts) unauthenticated(t *testing.T) int {
	t.Helper()
	var body string
	c.inNS(t, "proxy", func() error {
		conn, err := net.DialTimeout("tcp", c.metrics, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(bufio.NewReader(conn))
		body = string(b)
		return err
	})
	m := regexp.MustCompile(`discal_proxy_drops_total\{reason="unauthenticated"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// clientsAnswered sends expressions through the proxy from the proxy's
// host with the real udpclient and checks that every one is answered.
func (c *controlHosts) clientsAnswered(t *testing.T) {
	t.Helper()
	var in strings.Builder
	for i := range 50 {
		fmt.Fprintf(&in, "%d + 1\n", i)
	}
	cmd := exec.Command("ip", "netns", "exec", c.ns("proxy"), bin(t, "udpclient"), "-proxy", c.proxyIP+":7000")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("udpclient: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, l := range lines {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("answer %d: %q\n%s", i, l, out)
		}
	}
	if len(lines) != 50 {
		t.Fatalf("%d answers to 50", len(lines))
	}
}

// attack forges a drain from the proxy's address to s1, in both forms,
// and a join from an address inside -join-allow.
func (c *controlHosts) attack(t *testing.T) {
	proxy := netip.MustParseAddr(c.proxyIP)
	s1 := netip.AddrPortFrom(netip.MustParseAddr(c.servers[0]), 7101)
	c.forge(t, netip.AddrPortFrom(proxy, 40000), s1, []byte("drain\n"))
	c.forge(t, netip.AddrPortFrom(proxy, 40000), s1, codec.AppendControl(nil, 1, codec.Control{Cmd: codec.CmdDrain}))
	ghost := netip.AddrPortFrom(netip.MustParseAddr(c.subnet+".77"), 7101)
	join := func() {
		c.forge(t, ghost, netip.AddrPortFrom(proxy, 7000), codec.AppendJoin(nil, 2, codec.Join{CalcPort: 7001, Name: "ghost"}))
	}
	join()
	if !c.keyed {
		c.waitRotation(t, 1, "the forged drain did not take s1 out of rotation")
		if !strings.Contains(c.serverLine(t), " draining") {
			t.Fatal("s1 does not say it drains")
		}
		// The ghost answers no poll, and three missed polls drop it, about
		// 100 ms after its join: an attacker repeats the join, as a server
		// does, and the proxy reads it before the stats asked after it.
		eventually.True(t, 10*time.Second, "the forged join was not listed", func() bool {
			join()
			n, _ := c.proxyStats(t)
			return n == 3
		})
		t.Log("without a key: one forged datagram drained s1, another listed a server that does not exist")
		return
	}
	eventually.True(t, 10*time.Second, "the forged drains were not counted", func() bool {
		return strings.Contains(c.serverLine(t), " unauthenticated=2")
	})
	eventually.True(t, 10*time.Second, "the forged join was not counted", func() bool { return c.unauthenticated(t) >= 1 })
	if line := c.serverLine(t); strings.Contains(line, " draining") {
		t.Fatalf("s1 drains: %q", line)
	}
	if n, r := c.proxyStats(t); n != 2 || r != 2 {
		t.Fatalf("servers=%d in_rotation=%d after the attack, want 2 and 2", n, r)
	}
	c.clientsAnswered(t)
}

// replay sends a sealed drain, as the proxy's host would, then the same
// datagram again from the attacker: the first is obeyed, the replay not.
func (c *controlHosts) replay(t *testing.T) {
	proxy := netip.AddrPortFrom(netip.MustParseAddr(c.proxyIP), 40001)
	s1 := netip.AddrPortFrom(netip.MustParseAddr(c.servers[0]), 7101)
	sealed := codec.Seal(codec.AppendControl(nil, 3, codec.Control{Cmd: codec.CmdDrain}), c.key, time.Now())
	c.forge(t, proxy, s1, sealed) // genuine: sealed with the key
	c.waitRotation(t, 1, "a sealed drain was not obeyed")
	c.udpclient(t, "undrain")
	c.waitRotation(t, 2, "undrain did not bring s1 back")
	c.forge(t, proxy, s1, sealed)
	eventually.True(t, 10*time.Second, "the replay was not counted", func() bool {
		return strings.Contains(c.serverLine(t), " unauthenticated=3")
	})
	if _, r := c.proxyStats(t); r != 2 || strings.Contains(c.serverLine(t), " draining") {
		t.Fatal("the replayed drain was obeyed")
	}
	c.clientsAnswered(t)
}

// operate drains s1 and brings it back with the proxy host's udpclient
// and the key.
func (c *controlHosts) operate(t *testing.T) {
	c.udpclient(t, "drain")
	c.waitRotation(t, 1, "a drain from udpclient did not take s1 out")
	c.clientsAnswered(t)
	c.udpclient(t, "undrain")
	c.waitRotation(t, 2, "undrain did not bring s1 back")
}

func (c *controlHosts) udpclient(t *testing.T, cmd string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", c.ns("proxy"), bin(t, "udpclient"),
		"-status-addr", c.servers[0]+":7101", "-control-key", c.keyFile, cmd).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok: "+cmd {
		t.Fatalf("udpclient %s: %v: %s", cmd, err, out)
	}
}
