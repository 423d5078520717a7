package main

import (
	"io"
	"testing"

	"github.com/discal/discal/internal/cli/clitest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCommandLine: udpproxy reads its command line as every binary does,
// and its own usage errors are one line too.
func TestCommandLine(t *testing.T) {
	parse := func(args []string, stdout, stderr io.Writer) (int, bool) {
		o, code := parseFlags(args, stdout, stderr)
		return code, o == nil
	}
	clitest.Check(t, clitest.Binary{Name: "udpproxy", Duration: "poll", Env: true}, parse,
		clitest.Case{Args: []string{"-try-timeout", "5"}, Code: 64,
			Stderr: `udpproxy: invalid value "5" for flag -try-timeout: add a unit, e.g. 5ms (see -h)` + "\n"},
		clitest.Case{Args: []string{"-policy", "fastest"}, Code: 64,
			Stderr: `udpproxy: unknown policy "fastest" (least-load, round-robin, random) (see -h)` + "\n"},
		clitest.Case{Args: []string{"-addr", "nowhere", "-http-addr", "nonsense"}, Code: 64,
			Stderr: `udpproxy: -addr "nowhere": want host:port: address nowhere: missing port in address; ` +
				`-http-addr "nonsense": want host:port: address nonsense: missing port in address (see -h)` + "\n"},
		clitest.Case{Args: []string{"extra"}, Code: 64, Stderr: `udpproxy: unexpected argument "extra" (see -h)` + "\n"},
		clitest.Case{Args: []string{"-drain-grace", "-1s"}, Code: 64,
			Stderr: `udpproxy: -drain-grace -1s: must not be negative (see -h)` + "\n"},
	)
}
