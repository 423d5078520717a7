package main

import (
	"io"
	"testing"

	"github.com/discal/discal/internal/cli/clitest"
)

// TestCommandLine: udpclient reads its command line as every binary does.
func TestCommandLine(t *testing.T) {
	p := func(args []string, stdout, stderr io.Writer) (int, bool) {
		_, code, done := parse(args, stdout, stderr)
		return code, done
	}
	clitest.Check(t, clitest.Binary{Name: "udpclient", Duration: "timeout", Env: true}, p,
		clitest.Case{Args: []string{"-retries", "-1", "1+1"}, Code: 64,
			Stderr: "udpclient: -timeout must be positive and -retries not negative (see -h)\n"},
	)
}
