package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/miekg/dns"
)

// The name cluster DNS gives a headless Service's port named calc, as in
// deploy/kubernetes, and the domain its pods' host names live in.
const (
	k8sSRV    = "_calc._udp.discal-server.discal.svc.cluster.local."
	k8sDomain = "discal-server.discal.svc.cluster.local"
)

// dnsmasq is a real DNS server the test runs on loopback. Its SRV records
// are in its configuration (changed by a restart), its A records in a
// hosts file (changed by SIGHUP), as Kubernetes changes a pod's address
// under the same name.
type dnsmasq struct {
	path, dir, addr string
	cmd             *exec.Cmd
	exited          chan struct{}
	stderr          *lockedBuffer
}

// k8sHost is the host name a pod at ip gets in cluster DNS.
func k8sHost(ip string) string { return strings.ReplaceAll(ip, ".", "-") + "." + k8sDomain }

func startDnsmasq(t *testing.T) *dnsmasq {
	t.Helper()
	path, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/dnsmasq"); err2 != nil {
			t.Skip("dnsmasq is not installed (Debian's dnsmasq-base has it; .ci/run installs it as root): discovery against a real DNS server not tested")
		}
		path = "/usr/sbin/dnsmasq"
	}
	// dnsmasq drops root for nobody, who must still read the hosts file:
	// not in t.TempDir, whose parent only its owner may enter.
	dir, err := os.MkdirTemp("", "discal-dnsmasq-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &dnsmasq{path: path, dir: dir}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() && d.stderr != nil {
			t.Logf("dnsmasq's log:\n%s", d.stderr.String())
		}
		os.RemoveAll(dir)
	})
	return d
}

// configure writes the SRV records (targets and a port) and the A records.
func (d *dnsmasq) configure(t *testing.T, port uint16, targets []string, hosts map[string]string) {
	t.Helper()
	var conf strings.Builder
	fmt.Fprintf(&conf, "no-resolv\nno-hosts\nlocal=/cluster.local/\ncache-size=0\nlog-facility=-\nlog-queries\naddn-hosts=%s\n", filepath.Join(d.dir, "hosts"))
	for _, target := range targets {
		fmt.Fprintf(&conf, "srv-host=%s,%s,%d,0,100\n", strings.TrimSuffix(k8sSRV, "."), target, port)
	}
	var h strings.Builder
	for name, ip := range hosts {
		fmt.Fprintf(&h, "%s %s\n", ip, name)
	}
	for name, text := range map[string]string{"dnsmasq.conf": conf.String(), "hosts": h.String()} {
		if err := os.WriteFile(filepath.Join(d.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// start runs dnsmasq in the foreground on d.addr, or the first time on a
// port of its own (discaltest.KeptAddr: below the ephemeral range, so that
// no other socket is given it while dnsmasq is stopped and the restart
// finds it free), and waits until it answers.
func (d *dnsmasq) start(t *testing.T) {
	t.Helper()
	for try := 0; ; try++ {
		addr := d.addr
		if addr == "" {
			a, err := discaltest.KeptAddr(netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			addr = a.String()
		}
		_, port, _ := net.SplitHostPort(addr)
		d.cmd = exec.Command(d.path, "--keep-in-foreground", "--conf-file="+filepath.Join(d.dir, "dnsmasq.conf"),
			"--listen-address=127.0.0.1", "--bind-interfaces", "--port="+port, "--pid-file=")
		d.stderr = new(lockedBuffer)
		d.cmd.Stdout, d.cmd.Stderr = d.stderr, d.stderr
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		d.exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(d.cmd, d.exited)
		if d.answers(addr) {
			d.addr = addr
			return
		}
		d.stop()
		// Another test may have chosen the same port between the check
		// and dnsmasq's bind: try another, a few times. A restart keeps
		// its port: nothing else is given it.
		if d.addr != "" || try == 2 {
			t.Fatalf("dnsmasq did not answer on %s:\n%s", addr, d.stderr.String())
		}
	}
}

// answers asks dnsmasq for the SRV name until it replies, for at most ten
// seconds, or until it exits.
func (d *dnsmasq) answers(addr string) bool {
	c := dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(k8sSRV, dns.TypeSRV)
	up := false
	eventually.Within(10*time.Second, func() bool {
		select {
		case <-d.exited:
			return true // gone: no use asking again
		default:
		}
		_, _, err := c.Exchange(m, addr)
		up = err == nil
		return up
	})
	return up
}

// stop ends dnsmasq, by PID, and waits for it.
func (d *dnsmasq) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// reload makes dnsmasq read its hosts file again (SIGHUP) and waits until
// it answers for name with ip.
func (d *dnsmasq) reload(t *testing.T, name, ip string) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c := dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(name+".", dns.TypeA)
	answers := func() bool {
		r, _, err := c.Exchange(m, d.addr)
		if err != nil || len(r.Answer) != 1 {
			return false
		}
		a, ok := r.Answer[0].(*dns.A)
		return ok && a.A.String() == ip
	}
	if !eventually.Within(10*time.Second, answers) {
		t.Fatalf("dnsmasq does not answer %s with %s after SIGHUP:\n%s", name, ip, d.stderr.String())
	}
}

// k8sPort returns a port free for a calculator port and, 100 above, a
// status port on each of the addresses: in Kubernetes every pod uses the
// same ports on its own address.
func k8sPort(t *testing.T, ips ...string) uint16 {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		free := port+100 <= 65535
		for _, ip := range ips {
			for _, p := range []int{port, port + 100} {
				if l, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, p)); err != nil {
					free = false
				} else {
					l.Close()
				}
			}
		}
		if free {
			return uint16(port)
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

// srvUp returns, from a proxy's stats, the servers up that came from DNS
// (name → calculator address), and how many servers it has in all.
func srvUp(stats string) (up map[string]string, all int) {
	up = map[string]string{}
	lines := strings.Split(strings.TrimSpace(stats), "\n")
	if m := regexp.MustCompile(` servers=(\d+) `).FindStringSubmatch(lines[0]); m != nil {
		fmt.Sscan(m[1], &all)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "up" && strings.HasSuffix(l, " via=srv") {
			up[f[0]] = f[1]
		}
	}
	return up, all
}

// awaitSRVServers asks the proxy for its stats until its servers are
// exactly want, all up, and returns the stats.
func awaitSRVServers(t *testing.T, proxy, what string, want map[string]string) string {
	t.Helper()
	var stats string
	if !eventually.Within(15*time.Second, func() bool {
		stats = exchangeText(t, proxy, "stats\n")
		up, all := srvUp(stats)
		return all == len(want) && maps.Equal(up, want)
	}) {
		t.Fatalf("waited 15s for %s (%v); stats:\n%s", what, want, stats)
	}
	return stats
}

// TestDnsmasqKubernetesLayout: udpproxy -server-srv finds udpserver
// processes through a real DNS server (dnsmasq) that serves what cluster
// DNS serves for a headless Service: SRV records naming pods' host names,
// and their A records, every pod on the same ports at its own address. The
// records change while the proxy runs, as Kubernetes changes them, and the
// proxy follows:
//  1. two pods: both in rotation;
//  2. a pod's host name moves to a new address (SIGHUP): the proxy drops
//     the old address and takes the new one;
//  3. the DNS server stops: lookups fail and the proxy keeps its servers;
//  4. it comes back with one pod only: the other leaves.
func TestDnsmasqKubernetesLayout(t *testing.T) {
	d := startDnsmasq(t)
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	port := k8sPort(t, ips...)
	addr := func(i int) string { return fmt.Sprintf("%s:%d", ips[i], port) }
	for i, ip := range ips {
		p := start(t, "udpserver", "-quiet", "-name", fmt.Sprintf("pod%d", i+1),
			"-addr", addr(i), "-status-addr", fmt.Sprintf("%s:%d", ip, port+100))
		p.await(t, serverUp)
	}
	a, b := k8sHost(ips[0]), "pod-b."+k8sDomain // b keeps its name, as a StatefulSet's pod does
	d.configure(t, port, []string{a, b}, map[string]string{a: ips[0], b: ips[1]})
	d.start(t)

	px := start(t, "udpproxy", "-addr", "127.0.0.1:0", "-poll", "50ms",
		"-server-srv", k8sSRV, "-srv-dns", d.addr, "-srv-interval", "200ms")
	proxy := px.await(t, proxyUp)[1]
	awaitSRVServers(t, proxy, "both pods from DNS", map[string]string{"pod1": addr(0), "pod2": addr(1)})
	out, _, code := client(t, strings.Repeat("6 * 7\n", 40), "-proxy", proxy, "-v")
	if code != 0 || strings.Count(out, "42 (server pod") != 40 {
		t.Fatalf("exit %d: %q", code, out)
	}

	// 2: pod-b now resolves to the third address.
	d.configure(t, port, []string{a, b}, map[string]string{a: ips[0], b: ips[2]})
	d.reload(t, b, ips[2])
	awaitSRVServers(t, proxy, "pod-b at its new address", map[string]string{"pod1": addr(0), "pod3": addr(2)})

	// 3: no DNS server. The proxy says so and keeps what it had.
	d.stop()
	px.await(t, regexp.MustCompile(`SRV lookup failed; keeping the servers found before`))
	if up, all := srvUp(exchangeText(t, proxy, "stats\n")); all != 2 || len(up) != 2 {
		t.Fatalf("after a failed lookup the proxy has %d servers, %v up; want the 2 it had", all, up)
	}
	if out, _, code := client(t, "1 + 1\n", "-proxy", proxy); code != 0 || out != "2\n" {
		t.Fatalf("without DNS: exit %d, %q", code, out)
	}

	// 4: back, with one pod only.
	d.configure(t, port, []string{a}, map[string]string{a: ips[0], b: ips[2]})
	d.start(t)
	px.await(t, regexp.MustCompile(`SRV lookup works again`))
	awaitSRVServers(t, proxy, "only pod1 left", map[string]string{"pod1": addr(0)})
	if out, _, code := client(t, "", "-proxy", proxy, "-v", "2 * 21"); code != 0 || out != "42 (server pod1)\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
}

// TestDnsmasqIPTargets: SRV targets written as IP addresses, which some
// DNS servers let you configure, are not host names, and Go's resolver
// leaves those records out of its answer, with an error ("records which
// contain invalid names"), keeping the records that name hosts. The
// proxy's discovery is built on that resolver, so docs/operating.md tells
// users to give SRV targets as host names with A records, as Kubernetes
// does.
func TestDnsmasqIPTargets(t *testing.T) {
	d := startDnsmasq(t)
	named := k8sHost("127.0.0.11")
	d.configure(t, 7001, []string{named, "127.0.0.14"}, map[string]string{named: "127.0.0.11"})
	d.start(t)

	// dnsmasq serves both records, the IP address as a name.
	c := dns.Client{Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion(k8sSRV, dns.TypeSRV)
	r, _, err := c.Exchange(m, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			targets = append(targets, srv.Target)
		}
	}
	want := []string{"127.0.0.14.", named + "."}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Fatalf("dnsmasq answers SRV with targets %q, want %q", targets, want)
	}

	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, d.addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, srvs, err := res.LookupSRV(ctx, "", "", k8sSRV)
	var got []string
	for _, s := range srvs {
		got = append(got, s.Target)
	}
	if err == nil || !strings.Contains(err.Error(), "invalid names") || !slices.Equal(got, []string{named + "."}) {
		t.Fatalf("Go's resolver: targets %q, error %v; want only %s and an error about invalid names", got, err, named)
	}
	t.Logf("Go's resolver keeps %q and says: %v", got, err)
}
