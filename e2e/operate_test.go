package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
	"github.com/miekg/dns"
)

// awaitStats asks a proxy for its stats until they match re, and returns
// the last answer.
func awaitStats(t *testing.T, proxy, what string, re *regexp.Regexp) string {
	t.Helper()
	var text string
	if !eventually.Within(15*time.Second, func() bool {
		text = exchangeText(t, proxy, "stats\n")
		return re.MatchString(text)
	}) {
		t.Fatalf("waited 15s for %s; stats:\n%s", what, text)
	}
	return text
}

// TestJoinProcesses: a udpproxy started with -join-allow and no server
// learns two udpserver processes started with -join, sends work to both,
// and drops one once it has stopped.
func TestJoinProcesses(t *testing.T) {
	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-join-allow", "127.0.0.0/8", "-poll", "50ms")
	proxy := px.await(t, proxyUp)[1]
	j1 := start(t, "udpserver", "-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-name", "j1", "-join", proxy)
	j1.await(t, regexp.MustCompile(`udpserver joined proxy`))
	// The second one takes its proxy from the environment.
	startEnv(t, []string{"DISCAL_JOIN=" + proxy}, "udpserver", "-quiet", "-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-name", "j2")
	awaitStats(t, proxy, "both servers in rotation", regexp.MustCompile(`(?ms)servers=2 .*^j1 \S+ up .*via=join.*^j2 \S+ up|servers=2 .*^j2 \S+ up .*via=join.*^j1 \S+ up`))

	lines := strings.Repeat("6 * 7\n", 200)
	out, errOut, code := client(t, lines, "-proxy", proxy, "-v")
	if code != 0 || strings.Count(out, "42 (server j") != 200 {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
	}
	if !strings.Contains(out, "(server j1)") || !strings.Contains(out, "(server j2)") {
		t.Fatalf("not both servers answered:\n%s", out)
	}

	// SIGTERM: the server drains, stops, and leaves the proxy's list.
	_ = j1.cmd.Process.Signal(syscall.SIGTERM)
	awaitStats(t, proxy, "the stopped server removed", regexp.MustCompile(`servers=1 `))
	if out, _, code := client(t, "", "-proxy", proxy, "-v", "1 + 1"); code != 0 || out != "2 (server j2)\n" {
		t.Fatalf("after j1 left: exit %d, %q", code, out)
	}
}

// TestTwoProxies: two udpproxy processes in front of the same servers;
// one udpclient given both (-proxy a,b) keeps getting every answer while
// the first is killed halfway through its input.
func TestTwoProxies(t *testing.T) {
	s := startSystem(t)
	var servers []string
	for i := range s.calc {
		servers = append(servers, "-server", s.calc[i]+","+s.status[i])
	}
	first := launch(t, "udpproxy", append(servers, "-addr", "127.0.0.1:0", "-poll", "50ms")...)
	firstAddr := first.await(t, proxyUp)[1]

	cmd := exec.Command(bin(t, "udpclient"), "-proxy", firstAddr+","+s.proxy, "-timeout", "100ms")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	answers := bufio.NewScanner(stdout)
	ask := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if _, err := fmt.Fprintf(stdin, "%d + 1\n", i); err != nil {
				t.Fatal(err)
			}
			if !answers.Scan() {
				t.Fatalf("no answer to line %d; stderr %q", i, stderr.String())
			}
			if got, want := answers.Text(), fmt.Sprint(i+1); got != want {
				t.Fatalf("line %d answered %q, want %q", i, got, want)
			}
		}
	}
	ask(0, 50)
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL, by PID
		t.Fatal(err)
	}
	ask(50, 50)
	stdin.Close()
	if _, err := io.Copy(io.Discard, stdout); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("udpclient: %v; stderr %q", err, stderr.String())
	}
}

// srvZone answers SRV queries for one name with the servers it is given,
// and A queries for any name with 127.0.0.1.
type srvZone struct {
	mu    sync.Mutex
	name  string
	ports []uint16
}

func (z *srvZone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	switch {
	case q.Qtype == dns.TypeSRV && q.Name == z.name:
		for i, port := range z.ports {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: z.name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1},
				Target: fmt.Sprintf("s%d.discal.test.", i), Port: port})
		}
	case q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
			A: net.IPv4(127, 0, 0, 1)})
	}
	_ = w.WriteMsg(m)
}

// freePair returns a calculator port whose status port, 100 above, was free
// too a moment ago.
func freePair(t *testing.T) uint16 {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		s, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+100))
		c.Close()
		if err == nil {
			s.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free pair of ports")
	return 0
}

// TestSRVProcesses: udpproxy -server-srv, asking a DNS server on loopback
// (-srv-dns) that the test runs, finds the udpserver processes the SRV
// records list, and follows the records when they change.
func TestSRVProcesses(t *testing.T) {
	const name = "_calc._udp.discal.test."
	var ports []uint16
	for i := range 2 {
		port := freePair(t)
		p := start(t, "udpserver", "-quiet", "-name", fmt.Sprintf("d%d", i+1),
			"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-status-addr", fmt.Sprintf("127.0.0.1:%d", port+100))
		p.await(t, serverUp)
		ports = append(ports, port)
	}
	z := &srvZone{name: name, ports: ports[:1]}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	dnsSrv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = dnsSrv.ActivateAndServe() }()
	<-started
	defer func() { _ = dnsSrv.Shutdown() }()

	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-poll", "50ms",
		"-server-srv", name, "-srv-dns", pc.LocalAddr().String(), "-srv-interval", "200ms")
	proxy := px.await(t, proxyUp)[1]
	awaitStats(t, proxy, "d1 from DNS", regexp.MustCompile(`(?m)servers=1 [\s\S]*^d1 \S+ up .*via=srv`))
	if out, _, code := client(t, "", "-proxy", proxy, "-v", "6 * 7"); code != 0 || out != "42 (server d1)\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
	z.mu.Lock()
	z.ports = ports[1:]
	z.mu.Unlock()
	awaitStats(t, proxy, "d2 in place of d1", regexp.MustCompile(`(?m)servers=1 [\s\S]*^d2 \S+ up .*via=srv`))
	if out, _, code := client(t, "", "-proxy", proxy, "-v", "6 * 7"); code != 0 || out != "42 (server d2)\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
}
