package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// The folders kubectl apply -k takes: the layout, and the layout with a
// PodMonitor for the Prometheus Operator.
const (
	kubeDir     = "kubernetes"
	operatorDir = "prometheus-operator"
)

// kustomization is the part of kustomize's file the layout uses, decoded
// as strictly as the manifests: a field kustomize does not know is refused.
type kustomization struct {
	APIVersion      string            `json:"apiVersion"`
	Kind            string            `json:"kind"`
	Resources       []string          `json:"resources"`
	SecretGenerator []secretGenerator `json:"secretGenerator,omitempty"`
}

type secretGenerator struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"`
	Type      string   `json:"type,omitempty"`
	Files     []string `json:"files"`
}

// layout is every object of the manifests, decoded into the Kubernetes API
// types (the Prometheus Operator's for the PodMonitor).
type layout struct {
	kust        map[string]kustomization // by folder
	namespaces  []*corev1.Namespace
	secrets     []*corev1.Secret // only once kustomize has made them
	services    []*corev1.Service
	deployments []*appsv1.Deployment
	policies    []*networkingv1.NetworkPolicy
	budgets     []*policyv1.PodDisruptionBudget
	podMonitors []*monitoringv1.PodMonitor
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeStrict decodes YAML into v as the API server would, and then some:
// a field the type does not have, or a key given twice, is an error.
func decodeStrict(doc []byte, v any) error { return yaml.UnmarshalStrict(doc, v) }

// add decodes one document into the type its apiVersion and kind name.
func (l *layout) add(where string, doc []byte) error {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	var obj any
	switch meta.APIVersion + " " + meta.Kind {
	case "v1 Namespace":
		obj, l.namespaces = into(&l.namespaces)
	case "v1 Secret":
		obj, l.secrets = into(&l.secrets)
	case "v1 Service":
		obj, l.services = into(&l.services)
	case "apps/v1 Deployment":
		obj, l.deployments = into(&l.deployments)
	case "networking.k8s.io/v1 NetworkPolicy":
		obj, l.policies = into(&l.policies)
	case "policy/v1 PodDisruptionBudget":
		obj, l.budgets = into(&l.budgets)
	case "monitoring.coreos.com/v1 PodMonitor":
		obj, l.podMonitors = into(&l.podMonitors)
	default:
		return fmt.Errorf("%s: %s %s is a kind this test does not know: add it", where, meta.APIVersion, meta.Kind)
	}
	if err := decodeStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %s: %w", where, meta.Kind, err)
	}
	return nil
}

// into appends a new, empty object to the list and returns it with the list.
func into[T any](list *[]*T) (any, []*T) {
	o := new(T)
	return o, append(*list, o)
}

// loadLayout decodes every manifest the two kustomizations list, and
// checks they list every manifest in their folders.
func loadLayout(t *testing.T) *layout {
	t.Helper()
	l := &layout{kust: map[string]kustomization{}}
	for _, dir := range []string{kubeDir, operatorDir} {
		var k kustomization
		if err := decodeStrict([]byte(readFile(t, filepath.Join(dir, "kustomization.yaml"))), &k); err != nil {
			t.Fatalf("%s/kustomization.yaml: %v", dir, err)
		}
		l.kust[dir] = k
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, f := range files {
			if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
				t.Errorf("%s/kustomization.yaml does not list %s", dir, base)
			}
		}
		for _, r := range k.Resources {
			path := filepath.Join(dir, r)
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				continue // another kustomization, read on its own
			}
			l.addFile(t, path, readFile(t, path))
		}
	}
	return l
}

// addFile decodes every document of one file.
func (l *layout) addFile(t *testing.T, name, text string) {
	t.Helper()
	for i, doc := range docSep.Split(text, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		if err := l.add(fmt.Sprintf("%s, document %d", name, i+1), []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// TestManifestsDecodeStrictly: every manifest is a Kubernetes object of a
// known kind and version with no field its type lacks (a typo in a probe
// or a security context is refused, where kubectl would drop it
// silently), named, in the namespace the layout creates.
func TestManifestsDecodeStrictly(t *testing.T) {
	l := loadLayout(t)
	if len(l.namespaces) != 1 {
		t.Fatalf("%d namespaces, want 1", len(l.namespaces))
	}
	ns := l.namespaces[0].Name
	check := func(kind, name, namespace string) {
		if name == "" {
			t.Errorf("a %s without a name", kind)
		}
		if namespace != ns {
			t.Errorf("%s %s in namespace %q, want %q", kind, name, namespace, ns)
		}
	}
	for _, o := range l.services {
		check("Service", o.Name, o.Namespace)
	}
	for _, o := range l.deployments {
		check("Deployment", o.Name, o.Namespace)
	}
	for _, o := range l.policies {
		check("NetworkPolicy", o.Name, o.Namespace)
	}
	for _, o := range l.budgets {
		check("PodDisruptionBudget", o.Name, o.Namespace)
	}
	for _, o := range l.podMonitors {
		check("PodMonitor", o.Name, o.Namespace)
	}
	if len(l.deployments) != 2 || len(l.podMonitors) != 1 {
		t.Errorf("%d Deployments and %d PodMonitors, want 2 and 1", len(l.deployments), len(l.podMonitors))
	}
	// A strict decoder refuses what a lax one drops: the test's own proof.
	bad := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n  replica: 2\n"
	if err := (&layout{}).add("a typo", []byte(bad)); err == nil {
		t.Error("a Deployment with an unknown field (spec.replica) decoded")
	}
}
