package main

import (
	"io"
	"testing"

	"github.com/discal/discal/internal/cli/clitest"
)

// TestCommandLine: bench reads its command line as every binary does, but
// takes nothing from the environment, so that a DISCAL_ variable left for a
// daemon cannot change a measurement.
func TestCommandLine(t *testing.T) {
	parse := func(args []string, stdout, stderr io.Writer) (int, bool) {
		_, code, ok := parseFlags(args, stdout, stderr)
		return code, !ok
	}
	clitest.Check(t, clitest.Binary{Name: "bench", Duration: "d"}, parse,
		clitest.Case{Args: []string{"-timeout", "1"}, Code: 64,
			Stderr: `bench: invalid value "1" for flag -timeout: add a unit, e.g. 1ms (see -h)` + "\n"},
		clitest.Case{Args: []string{"extra"}, Code: 64, Stderr: `bench: unexpected argument "extra" (see -h)` + "\n"},
		clitest.Case{Args: []string{"-log-format", "json"}, Code: 64,
			Stderr: "bench: flag provided but not defined: -log-format (see -h)\n"},
	)
	t.Run("no environment", func(t *testing.T) {
		t.Setenv("DISCAL_D", "100")
		t.Setenv("DISCAL_VERSION", "true")
		o, code, ok := parseFlags([]string{"-local", "3"}, io.Discard, io.Discard)
		if !ok || code != 0 || o.load.Duration != 0 || o.local != 3 {
			t.Fatalf("parse with DISCAL_D and DISCAL_VERSION set: %+v, exit %d, ok %v", o.load, code, ok)
		}
	})
}
