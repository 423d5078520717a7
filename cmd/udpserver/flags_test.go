package main

import (
	"io"
	"testing"

	"github.com/discal/discal/internal/cli/clitest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCommandLine: udpserver reads its command line as every binary does,
// and its own usage errors are one line too.
func TestCommandLine(t *testing.T) {
	parse := func(args []string, stdout, stderr io.Writer) (int, bool) {
		o, code := parseFlags(args, stdout, stderr)
		return code, o == nil
	}
	clitest.Check(t, clitest.Binary{Name: "udpserver", Duration: "drain-grace", Env: true}, parse,
		clitest.Case{Args: []string{"-join-interval", "1"}, Code: 64,
			Stderr: `udpserver: invalid value "1" for flag -join-interval: add a unit, e.g. 1ms (see -h)` + "\n"},
		clitest.Case{Args: []string{"-join", "nowhere"}, Code: 64,
			Stderr: `udpserver: invalid value "nowhere" for flag -join: want host:port, the proxy's client port: ` +
				`address nowhere: missing port in address (see -h)` + "\n"},
		clitest.Case{Args: []string{"extra"}, Code: 64, Stderr: `udpserver: unexpected argument "extra" (see -h)` + "\n"},
	)
}
