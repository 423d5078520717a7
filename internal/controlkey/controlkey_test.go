package controlkey

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := bytes.Repeat([]byte{1}, MinSize)
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
		want error // nil: loads
	}{
		{"0600", good, 0o600, nil},
		{"0400", good, 0o400, nil},
		{"longer", append(good, 2, 3), 0o600, nil},
		{"short", good[:MinSize-1], 0o600, ErrShort},
		{"empty", nil, 0o600, ErrShort},
		{"group readable", good, 0o640, ErrInsecure},
		{"world readable", good, 0o604, ErrInsecure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, tt.name)
			if err := os.WriteFile(f, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			key, err := Load(f)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Load: %v, want %v", err, tt.want)
			}
			if err == nil && !bytes.Equal(key, tt.data) {
				t.Fatalf("key %x, want the file's %x", key, tt.data)
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
