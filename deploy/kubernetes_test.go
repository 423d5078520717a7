package deploy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// object is one decoded Kubernetes manifest.
type object map[string]any

// at walks maps (string keys) and lists (int indices); it returns nil where
// the path leads nowhere.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(object)
			if !ok {
				mm, ok2 := v.(map[string]any)
				if !ok2 {
					return nil
				}
				m = mm
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := at(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := at(v, path...).([]any)
	return l
}

// manifests decodes every document of the files kustomization.yaml lists,
// and checks it lists every manifest in the folder.
func manifests(t *testing.T) []object {
	t.Helper()
	dir := "kubernetes"
	var kust object
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(dir, "kustomization.yaml"))), &kust); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range list(kust, "resources") {
		listed = append(listed, r.(string))
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(listed, base) {
			t.Errorf("kustomization.yaml does not list %s", base)
		}
	}
	var objs []object
	for _, f := range listed {
		dec := yaml.NewDecoder(strings.NewReader(readFile(t, filepath.Join(dir, f))))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o["apiVersion"] == nil || o["kind"] == nil || str(o, "metadata", "name") == "" {
				t.Fatalf("%s: a document without apiVersion, kind or name: %v", f, o)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// find returns the one object of the kind whose pods (or selector) carry
// the component label.
func find(t *testing.T, objs []object, kind, component string) object {
	t.Helper()
	for _, o := range objs {
		labels := at(o, "spec", "template", "metadata", "labels")
		if kind == "Service" {
			labels = at(o, "spec", "selector")
		}
		if o["kind"] == kind && str(labels, "app.kubernetes.io/component") == component {
			return o
		}
	}
	t.Fatalf("no %s for the %s pods", kind, component)
	return nil
}

// args splits a container's arguments into flag → value ("true" for a
// bare boolean flag); it accepts -flag=value and -flag value.
func args(l []string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(l); i++ {
		name, value, ok := strings.Cut(strings.TrimLeft(l[i], "-"), "=")
		if !ok {
			value = "true"
			if i+1 < len(l) && !strings.HasPrefix(l[i+1], "-") {
				value, i = l[i+1], i+1
			}
		}
		m[name] = value
	}
	return m
}

// checkFlags fails the test for every flag in argv that the binary does
// not have, and returns the ones whose branch has not landed yet.
func checkFlags(t *testing.T, where, binary string, argv []string) (pending []string) {
	t.Helper()
	have := flagsOf(t, binary)
	for name := range args(argv) {
		switch {
		case have[name]:
		case name == "http-addr" && httpFlagPending(t, binary):
			pending = append(pending, binary+" -"+name)
		default:
			t.Errorf("%s: %s has no flag -%s", where, binary, name)
		}
	}
	return pending
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// container is what the tests need of a Deployment's one container.
type container struct {
	binary string
	flags  map[string]string
	ports  map[string]int    // name → containerPort
	protos map[string]string // name → protocol
	raw    any
}

func containerOf(t *testing.T, dep object) container {
	t.Helper()
	cs := list(dep, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want 1", str(dep, "metadata", "name"), len(cs))
	}
	c := container{ports: map[string]int{}, protos: map[string]string{}, raw: cs[0]}
	cmd := list(cs[0], "command")
	if len(cmd) != 1 {
		t.Fatalf("%s: command %v, want the one binary", str(dep, "metadata", "name"), cmd)
	}
	c.binary = strings.TrimPrefix(cmd[0].(string), "/")
	var argv []string
	for _, a := range list(cs[0], "args") {
		argv = append(argv, a.(string))
	}
	c.flags = args(argv)
	for _, p := range list(cs[0], "ports") {
		c.ports[str(p, "name")] = at(p, "containerPort").(int)
		c.protos[str(p, "name")] = str(p, "protocol")
	}
	return c
}

// TestKubernetesManifests: the manifests agree with the binaries (every
// flag and DISCAL_ variable exists, the image holds the commands) and with
// each other (ports, probes, scrape annotations, the SRV name the proxies
// look up).
func TestKubernetesManifests(t *testing.T) {
	objs := manifests(t)
	d := parseDockerfile(t)
	var pending []string
	deps := map[string]container{}
	for _, component := range []string{"server", "proxy"} {
		dep := find(t, objs, "Deployment", component)
		c := containerOf(t, dep)
		deps[component] = c
		where := "Deployment " + str(dep, "metadata", "name")
		if !slices.Contains(d.copied, "/"+c.binary) {
			t.Errorf("%s runs /%s, which the Dockerfile does not copy", where, c.binary)
		}
		var argv []string
		for f, v := range c.flags {
			argv = append(argv, "-"+f+"="+v)
		}
		pending = append(pending, checkFlags(t, where, c.binary, argv)...)
		for _, e := range list(c.raw, "env") {
			name, ok := strings.CutPrefix(str(e, "name"), "DISCAL_")
			flag := strings.ReplaceAll(strings.ToLower(name), "_", "-")
			if !ok || !flagsOf(t, c.binary)[flag] {
				t.Errorf("%s: env %s names no flag of %s", where, str(e, "name"), c.binary)
			}
		}
		checkProbes(t, where, dep, c)
	}
	checkServerPorts(t, objs, deps["server"], deps["proxy"])
	checkProxyService(t, objs, deps["proxy"])
	if len(pending) > 0 {
		t.Skipf("everything else agrees; %s: %s", strings.Join(pending, ", "), httpAddrPending)
	}
}

// checkProbes: readiness on /readyz and liveness on /healthz, on the port
// -http-addr listens on, which is also the one Prometheus scrapes.
func checkProbes(t *testing.T, where string, dep object, c container) {
	t.Helper()
	httpPort := portOf(t, c.flags["http-addr"])
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		g := at(c.raw, probe, "httpGet")
		if got := str(g, "path"); got != path {
			t.Errorf("%s: %s path %q, want %s", where, probe, got, path)
		}
		port, ok := at(g, "port").(int)
		if !ok {
			port = c.ports[str(g, "port")]
		}
		if port != httpPort {
			t.Errorf("%s: %s on port %v, -http-addr listens on %d", where, probe, at(g, "port"), httpPort)
		}
	}
	ann := at(dep, "spec", "template", "metadata", "annotations")
	if str(ann, "prometheus.io/scrape") != "true" || str(ann, "prometheus.io/port") != strconv.Itoa(httpPort) ||
		str(ann, "prometheus.io/path") != "/metrics" {
		t.Errorf("%s: scrape annotations %v, want scrape on %d at /metrics", where, ann, httpPort)
	}
}

// checkServerPorts: the headless Service's UDP port named calc is the
// servers' -addr, the status port is that plus the proxies'
// -srv-status-offset, and -server-srv names that Service.
func checkServerPorts(t *testing.T, objs []object, srv, px container) {
	t.Helper()
	svc := find(t, objs, "Service", "server")
	if str(svc, "spec", "clusterIP") != "None" {
		t.Errorf("the servers' Service is not headless (clusterIP %q)", str(svc, "spec", "clusterIP"))
	}
	calc := portOf(t, srv.flags["addr"])
	if srv.ports["calc"] != calc || srv.protos["calc"] != "UDP" {
		t.Errorf("container port calc %d/%s, -addr port %d/UDP", srv.ports["calc"], srv.protos["calc"], calc)
	}
	offset := 100
	if o, ok := px.flags["srv-status-offset"]; ok {
		offset, _ = strconv.Atoi(o)
	}
	if status := portOf(t, srv.flags["status-addr"]); status != calc+offset || srv.ports["status"] != status {
		t.Errorf("status port %d (container port %d), want -addr's %d plus -srv-status-offset %d",
			status, srv.ports["status"], calc, offset)
	}
	var named bool
	for _, p := range list(svc, "spec", "ports") {
		if str(p, "name") != "calc" {
			continue
		}
		named = true
		if str(p, "protocol") != "UDP" || (str(p, "targetPort") != "calc" && at(p, "targetPort") != calc) {
			t.Errorf("Service port calc: %v, want UDP to the calc port %d", p, calc)
		}
	}
	if !named {
		t.Error("the servers' Service has no port named calc")
	}
	want := fmt.Sprintf("_calc._udp.%s.%s.svc.cluster.local.", str(svc, "metadata", "name"), str(svc, "metadata", "namespace"))
	if got := px.flags["server-srv"]; got != want {
		t.Errorf("udpproxy -server-srv %q, the headless Service's SRV name is %q", got, want)
	}
}

// checkProxyService: the proxies' Service sends UDP to their -addr port.
func checkProxyService(t *testing.T, objs []object, px container) {
	t.Helper()
	svc := find(t, objs, "Service", "proxy")
	client := portOf(t, px.flags["addr"])
	ports := list(svc, "spec", "ports")
	if len(ports) != 1 {
		t.Fatalf("the proxies' Service has %d ports, want 1", len(ports))
	}
	p := ports[0]
	target, ok := at(p, "targetPort").(int)
	if !ok {
		target = px.ports[str(p, "targetPort")]
	}
	if str(p, "protocol") != "UDP" || target != client {
		t.Errorf("the proxies' Service port %v: want UDP to -addr's port %d", p, client)
	}
}
