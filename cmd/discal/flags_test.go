package main

import (
	"io"
	"testing"

	"github.com/discal/discal/internal/cli/clitest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCommandLine: discal reads its command line as every binary does
// (it has no duration flag), and its own usage errors are one line too.
func TestCommandLine(t *testing.T) {
	parse := func(args []string, stdout, stderr io.Writer) (int, bool) {
		cfg, _, code := parseFlags(args, stdout, stderr)
		return code, cfg == nil
	}
	clitest.Check(t, clitest.Binary{Name: "discal", Env: true}, parse,
		clitest.Case{Args: []string{"-servers", "0"}, Code: 64, Stderr: "discal: -servers must be 1 to 100 (see -h)\n"},
		clitest.Case{Args: []string{"-servers", "x"}, Code: 64,
			Stderr: `discal: invalid value "x" for flag -servers: parse error (see -h)` + "\n"},
		clitest.Case{Env: map[string]string{"DISCAL_SERVERS": "x"}, Code: 64,
			Stderr: `discal: DISCAL_SERVERS="x": parse error (see -h)` + "\n"},
	)
}
