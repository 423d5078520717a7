package testbin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPathBuildsAndRuns: the named binary is built once, with the
// environment given, and runs; Remove deletes it.
func TestPathBuildsAndRuns(t *testing.T) {
	s := &Set{Pkgs: []string{"./testdata/hello"}, Args: []string{"-trimpath"}, Env: []string{"CGO_ENABLED=0"}}
	path := s.Path(t, "hello")
	out, err := exec.Command(path).Output()
	if err != nil || string(out) != "hello from testbin\n" {
		t.Fatalf("%s: %q, %v", path, out, err)
	}
	if again := s.Path(t, "hello"); again != path {
		t.Errorf("second Path %q, want the same %q", again, path)
	}
	s.Remove()
	if err := exec.Command(path).Run(); err == nil {
		t.Errorf("%s still runs after Remove", path)
	}
}

// TestBuildFailureSaysWhat: a package that does not build gives an error
// that names the command and carries the compiler's words.
func TestBuildFailureSaysWhat(t *testing.T) {
	SkipShort(t)
	s := &Set{Pkgs: []string{"./testdata/missing"}}
	dir, err := s.build(t)
	defer (&Set{dir: dir}).Remove()
	if err == nil || !strings.Contains(err.Error(), "go build") || !strings.Contains(err.Error(), "testdata/missing") {
		t.Fatalf("error %v; want one naming the build and the package", err)
	}
}
