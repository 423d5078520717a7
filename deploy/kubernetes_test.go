package deploy

import (
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/discal/discal/internal/cli"
)

const componentLabel = "app.kubernetes.io/component"

// deployment returns the one Deployment whose pods are the component's.
func (l *layout) deployment(t *testing.T, component string) *appsv1.Deployment {
	t.Helper()
	for _, d := range l.deployments {
		if d.Spec.Template.Labels[componentLabel] == component {
			return d
		}
	}
	t.Fatalf("no Deployment for the %s pods", component)
	return nil
}

// service returns the one Service that selects the component's pods.
func (l *layout) service(t *testing.T, component string) *corev1.Service {
	t.Helper()
	for _, s := range l.services {
		if s.Spec.Selector[componentLabel] == component {
			return s
		}
	}
	t.Fatalf("no Service for the %s pods", component)
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
// not have.
func checkFlags(t *testing.T, where, binary string, argv []string) {
	t.Helper()
	have := flagsOf(t, binary)
	for name := range args(argv) {
		if !have[name] {
			t.Errorf("%s: %s has no flag -%s", where, binary, name)
		}
	}
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// container is what the tests need of a Deployment's one container.
type container struct {
	where  string // "Deployment NAME"
	binary string
	flags  map[string]string
	ports  map[string]corev1.ContainerPort // by name
	c      *corev1.Container
	pod    *corev1.PodSpec
}

func containerOf(t *testing.T, dep *appsv1.Deployment) container {
	t.Helper()
	where := "Deployment " + dep.Name
	cs := dep.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want 1", where, len(cs))
	}
	c := &cs[0]
	if len(c.Command) != 1 {
		t.Fatalf("%s: command %q, want the one binary", where, c.Command)
	}
	out := container{where: where, binary: strings.TrimPrefix(c.Command[0], "/"), flags: args(c.Args),
		ports: map[string]corev1.ContainerPort{}, c: c, pod: &dep.Spec.Template.Spec}
	for _, p := range c.Ports {
		out.ports[p.Name] = p
	}
	return out
}

// portNumber is what a Service's targetPort or a probe's port names in c.
func (c container) portNumber(p intstr.IntOrString) int32 {
	if p.Type == intstr.String {
		return c.ports[p.StrVal].ContainerPort
	}
	return p.IntVal
}

// TestKubernetesManifests: the manifests agree with the binaries (every
// flag and DISCAL_ variable exists, the image holds the commands) and with
// each other (ports, probes, scrape annotations, the SRV name the proxies
// look up, the drain within the grace Kubernetes gives).
func TestKubernetesManifests(t *testing.T) {
	l := loadLayout(t)
	d := parseDockerfile(t)
	deps := map[string]container{}
	for _, component := range []string{"server", "proxy"} {
		dep := l.deployment(t, component)
		c := containerOf(t, dep)
		deps[component] = c
		if !slices.Contains(d.copied, "/"+c.binary) {
			t.Errorf("%s runs /%s, which the image does not hold", c.where, c.binary)
		}
		checkFlags(t, c.where, c.binary, c.c.Args)
		for _, e := range c.c.Env {
			name, ok := strings.CutPrefix(e.Name, "DISCAL_")
			flag := strings.ReplaceAll(strings.ToLower(name), "_", "-")
			if !ok || !flagsOf(t, c.binary)[flag] {
				t.Errorf("%s: env %s names no flag of %s", c.where, e.Name, c.binary)
			}
		}
		checkProbes(t, dep, c)
		checkDrain(t, dep, c)
		checkNonRoot(t, dep, d)
	}
	checkServerPorts(t, l, deps["server"], deps["proxy"])
	checkProxyService(t, l, deps["proxy"])
}

// checkProbes: readiness on /readyz and liveness on /healthz, on the port
// -http-addr listens on, which is also the one Prometheus scrapes; neither
// flips on one slow answer.
func checkProbes(t *testing.T, dep *appsv1.Deployment, c container) {
	t.Helper()
	httpPort := portOf(t, c.flags["http-addr"])
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s", c.where, p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: %s path %q, want %s", c.where, p.name, p.probe.HTTPGet.Path, p.path)
		}
		if port := c.portNumber(p.probe.HTTPGet.Port); port != httpPort {
			t.Errorf("%s: %s on port %v, -http-addr listens on %d", c.where, p.name, p.probe.HTTPGet.Port.String(), httpPort)
		}
		// Kubernetes' defaults: one failure of a one-second timeout flips
		// readiness (the default threshold is 3, but a manifest can say 1).
		if p.probe.FailureThreshold < 2 {
			t.Errorf("%s: %s failureThreshold %d: one slow answer would flip it", c.where, p.name, p.probe.FailureThreshold)
		}
	}
	ann := dep.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(httpPort)) ||
		ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations %v, want scrape on %d at /metrics", c.where, ann, httpPort)
	}
}

// checkDrain: the drain grace and the shutdown after it fit in the
// termination grace, or Kubernetes kills the daemon mid-drain.
func checkDrain(t *testing.T, dep *appsv1.Deployment, c container) {
	t.Helper()
	g, ok := c.flags["drain-grace"]
	if !ok {
		t.Errorf("%s: no -drain-grace", c.where)
		return
	}
	grace, err := time.ParseDuration(g)
	if err != nil || grace <= 0 {
		t.Errorf("%s: -drain-grace %q: want a positive duration", c.where, g)
		return
	}
	term := 30 * time.Second // Kubernetes' default
	if s := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; s != nil {
		term = time.Duration(*s) * time.Second
	}
	if grace+cli.DefaultStopTimeout >= term {
		t.Errorf("%s: -drain-grace %v plus the shutdown's %v is not under terminationGracePeriodSeconds (%v)",
			c.where, grace, cli.DefaultStopTimeout, term)
	}
}

// checkNonRoot: the pods run as the image's user, which the kubelet can
// check is not root only when it is numeric.
func checkNonRoot(t *testing.T, dep *appsv1.Deployment, d dockerfile) {
	t.Helper()
	sc := dep.Spec.Template.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || sc.RunAsGroup == nil {
		t.Errorf("Deployment %s: want runAsNonRoot, runAsUser and runAsGroup", dep.Name)
		return
	}
	if got := strconv.FormatInt(*sc.RunAsUser, 10) + ":" + strconv.FormatInt(*sc.RunAsGroup, 10); got != d.user {
		t.Errorf("Deployment %s runs as %s, the image as %s", dep.Name, got, d.user)
	}
}

// checkServerPorts: the headless Service's UDP port named calc is the
// servers' -addr, the status port is that plus the proxies'
// -srv-status-offset, and -server-srv names that Service without the
// cluster's domain, which differs between clusters.
func checkServerPorts(t *testing.T, l *layout, srv, px container) {
	t.Helper()
	svc := l.service(t, "server")
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("the servers' Service is not headless (clusterIP %q)", svc.Spec.ClusterIP)
	}
	calc := portOf(t, srv.flags["addr"])
	if p := srv.ports["calc"]; p.ContainerPort != calc || p.Protocol != corev1.ProtocolUDP {
		t.Errorf("container port calc %d/%s, -addr port %d/UDP", p.ContainerPort, p.Protocol, calc)
	}
	offset := int32(100)
	if o, ok := px.flags["srv-status-offset"]; ok {
		n, _ := strconv.Atoi(o)
		offset = int32(n)
	}
	if status := portOf(t, srv.flags["status-addr"]); status != calc+offset || srv.ports["status"].ContainerPort != status {
		t.Errorf("status port %d (container port %d), want -addr's %d plus -srv-status-offset %d",
			status, srv.ports["status"].ContainerPort, calc, offset)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "calc" })
	if i < 0 {
		t.Fatal("the servers' Service has no port named calc")
	}
	if p := svc.Spec.Ports[i]; p.Protocol != corev1.ProtocolUDP || srv.portNumber(p.TargetPort) != calc {
		t.Errorf("Service port calc: %+v, want UDP to the calc port %d", p, calc)
	}
	checkSRVName(t, px.flags["server-srv"], svc, l.deployment(t, "proxy").Namespace)
}

// checkSRVName: the name the proxies look up is the Service's SRV name
// made relative: without the cluster's domain, which a pod's DNS search
// list supplies, whatever it is. A rooted name (a final dot) skips the
// search list; the SRV name with the domain is _calc._udp.SVC.NS.svc.DOMAIN.
func checkSRVName(t *testing.T, got string, svc *corev1.Service, proxyNS string) {
	t.Helper()
	want := []string{"_calc._udp." + svc.Name + "." + svc.Namespace + ".svc"}
	if proxyNS == svc.Namespace {
		// The first search domain, NS.svc.DOMAIN, completes it at the
		// first query.
		want = append(want, "_calc._udp."+svc.Name)
	}
	if !slices.Contains(want, got) {
		t.Errorf("udpproxy -server-srv %q, want one of %q: the headless Service's SRV name, to which the pod's search list adds the cluster domain", got, want)
	}
}

// checkProxyService: the proxies' Service sends UDP to their -addr port.
func checkProxyService(t *testing.T, l *layout, px container) {
	t.Helper()
	svc := l.service(t, "proxy")
	client := portOf(t, px.flags["addr"])
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("the proxies' Service has %d ports, want 1", len(svc.Spec.Ports))
	}
	p := svc.Spec.Ports[0]
	if p.Protocol != corev1.ProtocolUDP || px.portNumber(p.TargetPort) != client {
		t.Errorf("the proxies' Service port %+v: want UDP to -addr's port %d", p, client)
	}
}

// TestClusterDomainNotHardCoded: nothing in the manifests names the
// cluster's DNS domain; cluster.local is only the default.
func TestClusterDomainNotHardCoded(t *testing.T) {
	for _, dir := range []string{kubeDir, operatorDir} {
		for _, f := range loadLayout(t).kust[dir].Resources {
			if strings.HasSuffix(f, ".yaml") && strings.Contains(stripComments(readFile(t, path.Join(dir, f))), "cluster.local") {
				t.Errorf("%s/%s names cluster.local outside a comment", dir, f)
			}
		}
	}
}

// podsOf returns the pods' labels of every Deployment a selector selects.
func podsOf(t *testing.T, l *layout, sel *metav1.LabelSelector) []string {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range l.deployments {
		if s.Matches(labels.Set(d.Spec.Template.Labels)) && !s.Empty() {
			names = append(names, d.Name)
		}
	}
	return names
}

// TestDisruptionBudgets: each Deployment has a budget that selects its pods
// alone and lets a drain go on (one pod at a time), never blocks it.
func TestDisruptionBudgets(t *testing.T) {
	l := loadLayout(t)
	for _, dep := range l.deployments {
		var found int
		for _, b := range l.budgets {
			pods := podsOf(t, l, b.Spec.Selector)
			if !slices.Contains(pods, dep.Name) {
				continue
			}
			found++
			if len(pods) != 1 {
				t.Errorf("PodDisruptionBudget %s selects the pods of %q: want one Deployment's", b.Name, pods)
			}
			replicas := int32(1)
			if dep.Spec.Replicas != nil {
				replicas = *dep.Spec.Replicas
			}
			switch {
			case b.Spec.MinAvailable != nil && b.Spec.MaxUnavailable != nil:
				t.Errorf("PodDisruptionBudget %s sets both minAvailable and maxUnavailable", b.Name)
			case b.Spec.MinAvailable != nil && (b.Spec.MinAvailable.Type != intstr.Int || b.Spec.MinAvailable.IntVal >= replicas):
				t.Errorf("PodDisruptionBudget %s: minAvailable %s of %d replicas blocks every drain", b.Name, b.Spec.MinAvailable.String(), replicas)
			case b.Spec.MaxUnavailable != nil && (b.Spec.MaxUnavailable.Type != intstr.Int || b.Spec.MaxUnavailable.IntVal < 1):
				t.Errorf("PodDisruptionBudget %s: maxUnavailable %s blocks every drain", b.Name, b.Spec.MaxUnavailable.String())
			case b.Spec.MinAvailable == nil && b.Spec.MaxUnavailable == nil:
				t.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", b.Name)
			}
		}
		if found != 1 {
			t.Errorf("Deployment %s: %d PodDisruptionBudgets, want 1", dep.Name, found)
		}
	}
}

// TestServersSpread: the servers spread over nodes and zones, with a
// constraint that selects their own pods.
func TestServersSpread(t *testing.T) {
	l := loadLayout(t)
	dep := l.deployment(t, "server")
	keys := map[string]bool{}
	for _, c := range dep.Spec.Template.Spec.TopologySpreadConstraints {
		if pods := podsOf(t, l, c.LabelSelector); !slices.Equal(pods, []string{dep.Name}) {
			t.Errorf("spread over %s counts the pods of %q, want only %s's", c.TopologyKey, pods, dep.Name)
		}
		if c.MaxSkew < 1 {
			t.Errorf("spread over %s: maxSkew %d", c.TopologyKey, c.MaxSkew)
		}
		keys[c.TopologyKey] = true
	}
	if !keys[corev1.LabelHostname] || !keys[corev1.LabelTopologyZone] {
		t.Errorf("the servers spread over %v, want %s and %s", slices.Sorted(maps.Keys(keys)), corev1.LabelHostname, corev1.LabelTopologyZone)
	}
}

// TestPodMonitor: the PodMonitor scrapes what the annotations announce:
// every Deployment's pods, on the named port -http-addr listens on, at
// /metrics, in their namespace.
func TestPodMonitor(t *testing.T) {
	l := loadLayout(t)
	pm := l.podMonitors[0]
	pods := podsOf(t, l, &pm.Spec.Selector)
	for _, dep := range l.deployments {
		c := containerOf(t, dep)
		if !slices.Contains(pods, dep.Name) {
			t.Errorf("PodMonitor %s does not select the pods of %s", pm.Name, dep.Name)
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("PodMonitor %s: %d endpoints, want 1", pm.Name, len(pm.Spec.PodMetricsEndpoints))
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		if ep.Port == nil || c.ports[*ep.Port].ContainerPort != portOf(t, c.flags["http-addr"]) {
			t.Errorf("PodMonitor %s scrapes port %v; %s's -http-addr is %s", pm.Name, ep.Port, dep.Name, c.flags["http-addr"])
		}
		if ep.Path != dep.Spec.Template.Annotations["prometheus.io/path"] {
			t.Errorf("PodMonitor %s scrapes %q, the annotations say %q", pm.Name, ep.Path, dep.Spec.Template.Annotations["prometheus.io/path"])
		}
		if pm.Namespace != dep.Namespace && !pm.Spec.NamespaceSelector.Any && !slices.Contains(pm.Spec.NamespaceSelector.MatchNames, dep.Namespace) {
			t.Errorf("PodMonitor %s in %s does not look in %s", pm.Name, pm.Namespace, dep.Namespace)
		}
	}
}
