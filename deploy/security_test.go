package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// policyFor returns the NetworkPolicy that selects the Deployment's pods.
func (l *layout) policyFor(t *testing.T, component string) *networkingv1.NetworkPolicy {
	t.Helper()
	dep := l.deployment(t, component)
	for _, p := range l.policies {
		if slices.Contains(podsOf(t, l, &p.Spec.PodSelector), dep.Name) {
			return p
		}
	}
	t.Fatalf("no NetworkPolicy selects the %s pods", component)
	return nil
}

// admits says whether the rule lets traffic in to the container port p.
func admits(rule networkingv1.NetworkPolicyIngressRule, c container, p corev1.ContainerPort) bool {
	if len(rule.Ports) == 0 {
		return true
	}
	for _, rp := range rule.Ports {
		proto := corev1.ProtocolTCP
		if rp.Protocol != nil {
			proto = *rp.Protocol
		}
		if proto != p.Protocol {
			continue
		}
		if rp.Port == nil || (rp.Port.Type == intstr.String && rp.Port.StrVal == p.Name) ||
			(rp.Port.Type == intstr.Int && rp.Port.IntVal == p.ContainerPort) {
			return true
		}
	}
	return false
}

// TestNetworkPolicies: clients reach the proxies' UDP port from anywhere
// and their HTTP port (dashboard, /calc) only from named peers; the
// servers' UDP ports only from proxy pods.
func TestNetworkPolicies(t *testing.T) {
	l := loadLayout(t)
	for _, tt := range []struct {
		component string
		open      []string // ports anyone may reach
		closed    []string // ports only the peers named may reach
		onlyFrom  string   // when set, the closed ports' peers are these pods alone
	}{
		{"proxy", []string{"client"}, []string{"http"}, ""},
		{"server", []string{"http"}, []string{"calc", "status"}, "proxy"},
	} {
		t.Run(tt.component, func(t *testing.T) {
			p := l.policyFor(t, tt.component)
			c := containerOf(t, l.deployment(t, tt.component))
			if !slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				t.Fatalf("NetworkPolicy %s has policyTypes %v: ingress is not restricted", p.Name, p.Spec.PolicyTypes)
			}
			for _, name := range tt.open {
				if !slices.ContainsFunc(p.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool {
					return len(r.From) == 0 && admits(r, c, c.ports[name])
				}) {
					t.Errorf("NetworkPolicy %s: port %s is not open", p.Name, name)
				}
			}
			for _, name := range tt.closed {
				var reached bool
				for _, r := range p.Spec.Ingress {
					if !admits(r, c, c.ports[name]) {
						continue
					}
					reached = true
					if len(r.From) == 0 {
						t.Errorf("NetworkPolicy %s: port %s is open to every pod", p.Name, name)
					}
					if tt.onlyFrom != "" {
						checkPeers(t, l, p.Name, name, r.From, tt.onlyFrom)
					}
				}
				if !reached {
					t.Errorf("NetworkPolicy %s: nobody may reach port %s", p.Name, name)
				}
			}
		})
	}
}

// checkPeers: each peer is a pod selector for the component's pods alone.
func checkPeers(t *testing.T, l *layout, policy, port string, peers []networkingv1.NetworkPolicyPeer, component string) {
	t.Helper()
	want := []string{l.deployment(t, component).Name}
	for _, peer := range peers {
		if peer.IPBlock != nil || peer.NamespaceSelector != nil || peer.PodSelector == nil ||
			!slices.Equal(podsOf(t, l, peer.PodSelector), want) {
			t.Errorf("NetworkPolicy %s: port %s is open to %+v, want only the %s pods", policy, port, peer, component)
		}
	}
}

// TestControlKeySecret: the servers' -control-key is a file of the Secret
// kustomize makes, mounted read-only where the flag says, given to the
// servers' own group (fsGroup) with mode 0440 (the kubelet adds group
// read to defaultMode 0400): what a non-root pod can read and -control-key
// accepts, and no other user.
func TestControlKeySecret(t *testing.T) {
	l := loadLayout(t)
	c := containerOf(t, l.deployment(t, "server"))
	file := c.flags["control-key"]
	if file == "" {
		t.Fatalf("%s: no -control-key", c.where)
	}
	i := slices.IndexFunc(c.c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path.Dir(file) })
	if i < 0 {
		t.Fatalf("%s: nothing is mounted at %s, where -control-key %s is", c.where, path.Dir(file), file)
	}
	mount := c.c.VolumeMounts[i]
	if !mount.ReadOnly {
		t.Errorf("%s: the key's volume is mounted read-write", c.where)
	}
	j := slices.IndexFunc(c.pod.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
	if j < 0 || c.pod.Volumes[j].Secret == nil {
		t.Fatalf("%s: volume %s is not a Secret", c.where, mount.Name)
	}
	sec := c.pod.Volumes[j].Secret
	key := path.Base(file)
	if len(sec.Items) > 0 && !slices.ContainsFunc(sec.Items, func(k corev1.KeyToPath) bool { return k.Path == key }) {
		t.Errorf("%s: the Secret's items %v put nothing at %s", c.where, sec.Items, key)
	}
	for _, it := range sec.Items {
		if it.Path == key {
			key = it.Key
		}
	}
	if sec.DefaultMode == nil || *sec.DefaultMode&0o037 != 0 {
		mode := "unset (0644)"
		if sec.DefaultMode != nil {
			mode = fmt.Sprintf("%#o", *sec.DefaultMode)
		}
		t.Errorf("%s: the Secret's defaultMode is %s: want 0400 or 0440, which the kubelet makes 0440", c.where, mode)
	}
	sc := c.pod.SecurityContext
	if sc == nil || sc.FSGroup == nil || sc.RunAsGroup == nil || *sc.FSGroup != *sc.RunAsGroup {
		t.Errorf("%s: fsGroup must be runAsGroup, so the key's group is the server's own", c.where)
	}
	gens := l.kust[kubeDir].SecretGenerator
	g := slices.IndexFunc(gens, func(g secretGenerator) bool { return g.Name == sec.SecretName })
	if g < 0 {
		t.Fatalf("%s mounts Secret %s, which %s/kustomization.yaml does not make", c.where, sec.SecretName, kubeDir)
	}
	if !slices.ContainsFunc(gens[g].Files, func(f string) bool { return secretKey(f) == key }) {
		t.Errorf("Secret %s: no file for the key %s among %q", sec.SecretName, key, gens[g].Files)
	}
}

// secretKey is the key a secretGenerator file becomes: "key=path" or the
// file's name.
func secretKey(file string) string {
	if k, _, ok := strings.Cut(file, "="); ok {
		return k
	}
	return path.Base(file)
}

// copyDir copies the files (not folders) of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), []byte(readFile(t, f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKustomizeBuild: kubectl kustomize builds both layouts, offline, from
// a key made by udpserver -gen-key; what it makes decodes strictly, and
// the servers mount the Secret it made, holding that key, under the name
// it gave it (with its hash).
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: the layouts are not built with kustomize (the manifests are still checked one by one)")
	}
	dir := t.TempDir()
	copyDir(t, kubeDir, filepath.Join(dir, kubeDir))
	copyDir(t, operatorDir, filepath.Join(dir, operatorDir))
	keyFile := filepath.Join(dir, kubeDir, "control.key")
	if out, err := exec.Command(bin(t, "udpserver"), "-gen-key", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("udpserver -gen-key: %v\n%s", err, out)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{kubeDir, operatorDir} {
		t.Run(d, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", filepath.Join(dir, d)).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", d, err, stderrOf(err))
			}
			l := &layout{}
			l.addFile(t, "kubectl kustomize "+d, string(out))
			if len(l.secrets) != 1 {
				t.Fatalf("%d Secrets, want 1", len(l.secrets))
			}
			s := l.secrets[0]
			if got := s.Data["control.key"]; !bytes.Equal(got, key) {
				t.Errorf("Secret %s holds %d bytes under control.key, want the %d of udpserver -gen-key", s.Name, len(got), len(key))
			}
			for _, v := range l.deployment(t, "server").Spec.Template.Spec.Volumes {
				if v.Secret != nil && v.Secret.SecretName != s.Name {
					t.Errorf("the servers mount Secret %s; kustomize made %s", v.Secret.SecretName, s.Name)
				}
			}
			if d == operatorDir && len(l.podMonitors) != 1 {
				t.Errorf("%s made %d PodMonitors, want 1", d, len(l.podMonitors))
			}
		})
	}
}

func stderrOf(err error) string {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(ee.Stderr)
	}
	return ""
}
