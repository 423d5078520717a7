// Package testbin builds the binaries that tests run as real processes:
// once per test process, into a temporary directory, with the machine held
// (internal/exclusive) while the compiler runs, since a compiler beside a
// test that measures balance starves it.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/discal/discal/internal/exclusive"
)

// Set is a set of binaries built together on first use.
type Set struct {
	Pkgs []string // what to build, as go build takes it: "../cmd/...", "../bench"
	Args []string // build flags before the packages: "-trimpath"
	Env  []string // added to go build's environment: "CGO_ENABLED=0"

	once sync.Once
	dir  string
	err  error
}

// Path builds the set the first time it is asked for, and returns where
// the named binary is. A failed build fails t, and every later caller.
// Under -short it skips t, saying so: building and running binaries is
// for the full suite.
func (s *Set) Path(t testing.TB, name string) string {
	t.Helper()
	SkipShort(t)
	s.once.Do(func() { s.dir, s.err = s.build(t) })
	if s.err != nil {
		t.Fatal(s.err)
	}
	return filepath.Join(s.dir, name)
}

// SkipShort skips t under -short: for a test that builds or runs built
// binaries before it asks Path for one.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binaries (internal/testbin): skipped under -short")
	}
}

// Remove deletes what was built: TestMain calls it after m.Run.
func (s *Set) Remove() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func (s *Set) build(t testing.TB) (string, error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "discal-bin-")
	if err != nil {
		return "", err
	}
	args := append(append([]string{"build", "-o", dir + string(os.PathSeparator)}, s.Args...), s.Pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), s.Env...)
	var out []byte
	exclusive.During(t, func() { out, err = cmd.CombinedOutput() })
	if err != nil {
		return dir, fmt.Errorf("%s go %s: %w\n%s", strings.Join(s.Env, " "), strings.Join(args, " "), err, out)
	}
	return dir, nil
}
