package controlkey

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// strongKey returns n bytes that pass the distinct-bytes rule: 0, 7, 14, ...
func strongKey(n int) []byte {
	key := make([]byte, n)
	for i := range key {
		key[i] = byte(i * 7)
	}
	return key
}

// foreignGroup returns a group this process is not in.
func foreignGroup(t *testing.T) int {
	t.Helper()
	for g := 4321; g < 5000; g++ {
		if !inGroup(g) {
			return g
		}
	}
	t.Fatal("this process is in every group from 4321 to 5000")
	return 0
}

// writeKey writes data to a file in dir with exactly mode and, when gid is
// not -1, that group.
func writeKey(t *testing.T, dir, name string, data []byte, mode os.FileMode, gid int) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if gid != -1 {
		if err := os.Chown(f, -1, gid); err != nil {
			t.Skipf("cannot give the file group %d: %v", gid, err)
		}
	}
	if err := os.Chmod(f, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return f
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := strongKey(MinSize)
	own, foreign := os.Getgid(), -1
	if os.Geteuid() == 0 {
		foreign = foreignGroup(t) // only root can give a file a group it is not in
	}
	fifteen := bytes.Repeat(strongKey(15), 3)
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
		gid  int   // -1: the file's as created
		want error // nil: loads
	}{
		{"0600", good, 0o600, -1, nil},
		{"0400", good, 0o400, -1, nil},
		{"longer", append(good, 2, 3), 0o600, -1, nil},
		{"sixteen distinct bytes", bytes.Repeat(strongKey(16), 2), 0o600, -1, nil},
		{"short", good[:MinSize-1], 0o600, -1, ErrShort},
		{"empty", nil, 0o600, -1, ErrShort},
		{"32 zero bytes", make([]byte, 32), 0o600, -1, ErrWeak},
		{"one byte repeated", bytes.Repeat([]byte{0x5a}, 64), 0o600, -1, ErrWeak},
		{"fifteen distinct bytes", fifteen, 0o600, -1, ErrWeak},
		{"a password typed over and over", []byte(strings.Repeat("hunter2!", 8)), 0o600, -1, ErrWeak},
		{"world readable", good, 0o604, -1, ErrInsecure},
		{"world readable, own group", good, 0o644, own, ErrInsecure},
		{"group writable, own group", good, 0o660, own, ErrInsecure},
		{"world writable", good, 0o602, -1, ErrInsecure},
		{"0440, own group", good, 0o440, own, nil},
		{"0640, own group", good, 0o640, own, nil},
		{"0440, another group", good, 0o440, foreign, ErrInsecure},
		{"0640, another group", good, 0o640, foreign, ErrInsecure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.gid == -1 && strings.Contains(tt.name, "another group") {
				t.Skip("not root: cannot give a file a group this process is not in")
			}
			f := writeKey(t, dir, strings.ReplaceAll(tt.name, " ", "_"), tt.data, tt.mode, tt.gid)
			key, err := Load(f)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Load: %v, want %v", err, tt.want)
			}
			if err == nil && !bytes.Equal(key, tt.data) {
				t.Fatalf("key %x, want the file's %x", key, tt.data)
			}
			if err != nil && !strings.Contains(err.Error(), f) {
				t.Errorf("the error %q does not name the file", err)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file loaded")
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("a directory loaded")
	}
}

// kubernetesSecret lays out a Secret volume as the kubelet does: the key
// in a timestamped directory, ..data a symlink to it, and the key's name a
// symlink into ..data. The file is uid:gid mode 0440 (the kubelet's uid is
// root's, gid the fsGroup, 0440 the defaultMode).
func kubernetesSecret(t *testing.T, dir string, key []byte, uid, gid int) string {
	t.Helper()
	ts := filepath.Join(dir, "..2025_01_01_00_00_00.000000000")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	writeKey(t, ts, "control.key", key, 0o440, gid)
	if err := os.Chown(filepath.Join(ts, "control.key"), uid, gid); err != nil {
		t.Skipf("not root: %v", err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "control.key")
	if err := os.Symlink(filepath.Join("..data", "control.key"), link); err != nil {
		t.Fatal(err)
	}
	return link
}

// TestLoadKubernetesSecret: a Secret mounted with an fsGroup loads in a
// process that runs as that group, as its supplementary group, and not in
// one outside it. Each case is a real process with those credentials: this
// test binary run again as uid 65532.
func TestLoadKubernetesSecret(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	dir := t.TempDir()
	// The other user must reach the binary and the files.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := copyTestBinary(t, dir)
	key := make([]byte, GenSize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	// The process runs as uid 65532 (gid as given); the file is 0440.
	tests := []struct {
		name              string
		fileUser, fileGrp int
		gid               uint32
		groups            []uint32
		want              string
	}{
		{"fsGroup is the process's group", 0, 65532, 65532, nil, "loaded"},
		{"fsGroup is a supplementary group", 0, 2000, 65532, []uint32{2000}, "loaded"},
		// The process reads it as its owner, but so may a group it is
		// not in.
		{"its own file, another group's", 65532, 2000, 65532, []uint32{2001}, ErrInsecure.Error()},
		{"its own file, its own group's", 65532, 65532, 65532, nil, "loaded"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := filepath.Join(dir, strconv.Itoa(i))
			if err := os.Mkdir(secret, 0o755); err != nil {
				t.Fatal(err)
			}
			link := kubernetesSecret(t, secret, key, tt.fileUser, tt.fileGrp)
			cmd := exec.Command(bin, "-test.run=^TestLoadHelper$")
			cmd.Env = append(os.Environ(), "CONTROLKEY_HELPER_FILE="+link)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: tt.gid, Groups: tt.groups}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "helper: "+tt.want) {
				t.Fatalf("as uid 65532 gid %d groups %v, a 0440 file of %d:%d: %s; want %q",
					tt.gid, tt.groups, tt.fileUser, tt.fileGrp, out, tt.want)
			}
		})
	}
}

// TestLoadHelper is TestLoadKubernetesSecret's other process: it loads
// the file it is given and says what happened.
func TestLoadHelper(t *testing.T) {
	file := os.Getenv("CONTROLKEY_HELPER_FILE")
	if file == "" {
		t.Skip("run by TestLoadKubernetesSecret")
	}
	key, err := Load(file)
	switch {
	case err != nil && errors.Is(err, ErrInsecure):
		fmt.Printf("helper: %v\n", ErrInsecure)
	case err != nil:
		fmt.Printf("helper: failed: %v\n", err)
	case len(key) == GenSize:
		fmt.Printf("helper: loaded (uid %d gid %d)\n", os.Getuid(), os.Getgid())
	}
}

// copyTestBinary copies this test binary where another user can run it:
// the go command builds it in a directory only its owner may enter.
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "controlkey.test")
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestGenerate(t *testing.T) {
	f := filepath.Join(t.TempDir(), "key")
	if err := Generate(f); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != GenSize {
		t.Fatalf("mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), GenSize)
	}
	key, err := Load(f)
	if err != nil || bytes.Equal(key, make([]byte, GenSize)) {
		t.Fatalf("Load of a generated key: %x, %v", key, err)
	}
	if err := Generate(f); err == nil {
		t.Fatal("Generate overwrote a key")
	}
}

// TestGeneratedKeysAreStrong: what Generate makes passes the
// distinct-bytes rule (a thousand keys here; MinDistinct says the odds).
func TestGeneratedKeysAreStrong(t *testing.T) {
	dir := t.TempDir()
	for i := range 1000 {
		f := filepath.Join(dir, strconv.Itoa(i))
		if err := Generate(f); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(f); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
}
