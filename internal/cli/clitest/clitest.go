// Package clitest holds every binary to the one way discal's binaries read
// a command line (cli.ParseCommandLine): -h and -version on standard output
// with exit 0, a bad flag as one line on standard error with exit 64, and
// a duration without a unit refused with a request for one.
package clitest

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// Parse is a binary's flag parsing, run in-process: done says that the run
// ends there, with exit code; otherwise the binary would go on.
type Parse func(args []string, stdout, stderr io.Writer) (code int, done bool)

// Binary describes what Check asks of one binary.
type Binary struct {
	Name     string // "udpproxy": the usage's first word and the error lines'
	Duration string // a duration flag, such as "poll"; "" for none
	Env      bool   // flags come from DISCAL_ variables too
}

// Case is one command line and what it must do.
type Case struct {
	Args   []string
	Env    map[string]string // set for this case only
	Code   int
	Stdout string // a prefix of standard output; "" means none at all
	Stderr string // the whole of standard error; "" means none at all
}

// Cases are the command lines every binary must treat the same way.
func (b Binary) Cases() []Case {
	n := b.Name
	cs := []Case{
		{Args: []string{"-h"}, Stdout: n + ": "},
		{Args: []string{"-help"}, Stdout: n + ": "},
		{Args: []string{"-version"}, Stdout: n + " discal "},
		{Args: []string{"-no-such-flag"}, Code: 64, Stderr: n + ": flag provided but not defined: -no-such-flag (see -h)\n"},
		{Args: []string{"-version=maybe"}, Code: 64,
			Stderr: n + `: invalid boolean value "maybe" for -version: parse error (see -h)` + "\n"},
	}
	if d := b.Duration; d != "" {
		cs = append(cs,
			Case{Args: []string{"-" + d, "100"}, Code: 64,
				Stderr: n + `: invalid value "100" for flag -` + d + ": add a unit, e.g. 100ms (see -h)\n"},
			Case{Args: []string{"-" + d, "soon"}, Code: 64,
				Stderr: n + `: invalid value "soon" for flag -` + d + ": not a duration, e.g. 1s or 250ms (see -h)\n"},
			Case{Args: []string{"-" + d}, Code: 64, Stderr: n + ": flag needs an argument: -" + d + " (see -h)\n"},
		)
		if b.Env {
			v := "DISCAL_" + strings.ToUpper(strings.ReplaceAll(d, "-", "_"))
			cs = append(cs, Case{Env: map[string]string{v: "250"}, Code: 64,
				Stderr: n + ": " + v + `="250": add a unit, e.g. 250ms (see -h)` + "\n"})
		}
	}
	return cs
}

// Check runs b's cases and the binary's own through parse.
func Check(t *testing.T, b Binary, parse Parse, own ...Case) {
	t.Helper()
	// A parse that gets through sets the default logger: put it back.
	logger := slog.Default()
	t.Cleanup(func() { slog.SetDefault(logger) })
	for _, c := range append(b.Cases(), own...) {
		t.Run(strings.Join(c.Args, " ")+envName(c.Env), func(t *testing.T) {
			for k, v := range c.Env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code, done := parse(c.Args, &stdout, &stderr)
			if !done || code != c.Code {
				t.Fatalf("exit %d (done %v), want %d; stdout %q, stderr %q", code, done, c.Code, stdout.String(), stderr.String())
			}
			out := stdout.String()
			if c.Stdout == "" && out != "" || !strings.HasPrefix(out, c.Stdout) {
				t.Errorf("stdout %q, want %q first", out, c.Stdout)
			}
			if stderr.String() != c.Stderr {
				t.Errorf("stderr %q, want %q", stderr.String(), c.Stderr)
			}
			switch strings.Join(c.Args, " ") {
			case "-h", "-help":
				// The usage, then every flag with its default.
				if !strings.Contains(out, "\n  -version\n") || !strings.Contains(out, "Flags:\n") {
					t.Errorf("-h prints no flags:\n%s", out)
				}
				if d := b.Duration; d != "" && !strings.Contains(out, "\n  -"+d+" ") {
					t.Errorf("-h does not list -%s:\n%s", d, out)
				}
			case "-version":
				if strings.Count(out, "\n") != 1 {
					t.Errorf("-version prints %q, want one line", out)
				}
			}
		})
	}
}

func envName(env map[string]string) string {
	var s []string
	for k, v := range env {
		s = append(s, k+"="+v)
	}
	return strings.Join(s, " ")
}
