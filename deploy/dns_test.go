package deploy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// podDomain is a cluster domain other than Kubernetes' default, so that a
// name that hard-codes cluster.local would find nothing.
const podDomain = "k8s.example"

// TestSRVNameInPodDNS: the proxy, with the manifest's -server-srv, finds
// the servers through DNS as a pod does: its resolv.conf is the one the
// kubelet writes (search NS.svc.DOMAIN svc.DOMAIN DOMAIN, ndots:5) for a
// cluster whose domain is not cluster.local, and a real DNS server
// (dnsmasq) serves the headless Service's records. It needs root (a
// mount namespace, for a resolv.conf of its own), unshare and dnsmasq.
func TestSRVNameInPodDNS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dnsmasq and the built binaries; skipped under -short")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root for a mount namespace with a pod's resolv.conf: the SRV name is checked only as text")
	}
	dnsmasq, err := exec.LookPath("dnsmasq")
	if err != nil {
		if dnsmasq = "/usr/sbin/dnsmasq"; !fileExists(dnsmasq) {
			t.Skip("dnsmasq is not installed (.ci/run installs dnsmasq-base): the SRV name is checked only as text")
		}
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed: the SRV name is checked only as text")
	}
	l := loadLayout(t)
	px, svc := containerOf(t, l.deployment(t, "proxy")), l.service(t, "server")
	offset, _ := strconv.Atoi(px.flags["srv-status-offset"])

	calc := freePortPair(t, offset)
	srv := start(t, "udpserver", "-quiet", "-addr", fmt.Sprintf("127.0.0.1:%d", calc),
		"-status-addr", fmt.Sprintf("127.0.0.1:%d", calc+offset))
	srv.awaitAll(t, serverUp)

	dir := t.TempDir()
	dnsIP := fmt.Sprintf("127.53.%d.%d", rand.IntN(250)+1, rand.IntN(250)+1)
	fqdnSRV := "_calc._udp." + svc.Name + "." + svc.Namespace + ".svc." + podDomain
	target := "discal-server-0." + svc.Name + "." + svc.Namespace + ".svc." + podDomain
	conf := fmt.Sprintf("no-resolv\nno-hosts\nlocal=/%s/\nlisten-address=%s\nbind-interfaces\nport=53\n"+
		"srv-host=%s,%s,%d,0,100\nhost-record=%s,127.0.0.1\n", podDomain, dnsIP, fqdnSRV, target, calc, target)
	write(t, filepath.Join(dir, "dnsmasq.conf"), conf)
	var dnsLog bytes.Buffer // read only after Wait
	dns := exec.Command(dnsmasq, "--keep-in-foreground", "-u", "root", "-C", filepath.Join(dir, "dnsmasq.conf"))
	dns.Stderr = &dnsLog
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dns.Process.Signal(syscall.SIGTERM)
		_ = dns.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", dnsLog.String())
		}
	})

	ns := l.deployment(t, "proxy").Namespace
	write(t, filepath.Join(dir, "resolv.conf"), fmt.Sprintf("search %[1]s.svc.%[2]s svc.%[2]s %[2]s\nnameserver %[3]s\noptions ndots:5\n", ns, podDomain, dnsIP))
	// The proxy in a mount namespace of its own, where /etc/resolv.conf is
	// the pod's; exec keeps its PID, which cleanup signals.
	script := fmt.Sprintf("mount --bind %s /etc/resolv.conf && exec %s \"$@\"", filepath.Join(dir, "resolv.conf"), bin(t, "udpproxy"))
	proxy := startCmd(t, "udpproxy", unshare, "-m", "--propagation", "private", "sh", "-c", script, "udpproxy",
		"-addr", "127.0.0.1:0", "-poll", "50ms", "-server-srv", px.flags["server-srv"],
		"-srv-status-offset", px.flags["srv-status-offset"], "-srv-interval", "1s")
	addr := proxy.awaitAll(t, proxyUp)[0][1]
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := askText(conn, "6 * 7", time.Second)
		if err == nil && got == "42" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy with -server-srv %s under cluster domain %s: %q, %v; want 42 from the server the SRV record names",
				px.flags["server-srv"], podDomain, got, err)
		}
	}
}

// freePortPair finds a port p such that p and p+offset are both free on
// 127.0.0.1 for UDP now.
func freePortPair(t *testing.T, offset int) int {
	t.Helper()
	for range 100 {
		p := 20000 + rand.IntN(30000)
		a, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+offset))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatal("no two free UDP ports found")
	return 0
}

func write(t *testing.T, file, text string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
