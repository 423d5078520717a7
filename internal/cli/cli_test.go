package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func TestEnvironmentFillsFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	addr := fs.String("status-addr", "default", "")
	proxy := fs.String("proxy", "default", "")
	var servers list
	fs.Var(&servers, "server", "")
	c := Register(fs, "x")
	t.Setenv("DISCAL_STATUS_ADDR", "from-env")
	t.Setenv("DISCAL_PROXY", "from-env")
	t.Setenv("DISCAL_SERVER", "a,b c,d")
	var logs bytes.Buffer
	if err := c.Parse(fs, []string{"-proxy", "from-flag", "-log-format", "json"}, &logs, "server"); err != nil {
		t.Fatal(err)
	}
	if *addr != "from-env" || *proxy != "from-flag" {
		t.Fatalf("status-addr %q, proxy %q", *addr, *proxy)
	}
	if len(servers) != 2 || servers[0] != "a,b" || servers[1] != "c,d" {
		t.Fatalf("servers %v", servers)
	}
	if EnvName("status-addr") != "DISCAL_STATUS_ADDR" {
		t.Fatal(EnvName("status-addr"))
	}
}

func TestVersionAndBadFormat(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	c := Register(fs, "udpx")
	if err := c.Parse(fs, []string{"-version"}, &out); !errors.Is(err, ErrVersion) || !strings.HasPrefix(out.String(), "udpx discal ") {
		t.Fatalf("-version: %v, %q", err, out.String())
	}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	c = Register(fs, "udpx")
	if err := c.Parse(fs, []string{"-log-format", "xml"}, &out); err == nil {
		t.Fatal("-log-format xml accepted")
	}
}

// TestParseCommandLine: the one way every binary reads its command line
// (the binaries' own tests hold each of them to it through clitest).
func TestParseCommandLine(t *testing.T) {
	newSet := func() (*flag.FlagSet, *Common, *time.Duration) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		d := fs.Duration("wait", time.Second, "how long to wait")
		return fs, RegisterVersion(fs, "udpx"), d
	}
	tests := []struct {
		args           []string
		code           int
		done           bool
		stdout, stderr string
		wait           time.Duration // when the run goes on
	}{
		{nil, ExitOK, false, "", "", time.Second},
		{[]string{"-wait", "250ms"}, ExitOK, false, "", "", 250 * time.Millisecond},
		{[]string{"-wait", "0"}, ExitOK, false, "", "", 0},
		{[]string{"-wait", "1.5"}, ExitUsage, true, "", `udpx: invalid value "1.5" for flag -wait: add a unit, e.g. 1.5ms (see -h)` + "\n", time.Second},
		{[]string{"-wait", "1e3"}, ExitUsage, true, "", `udpx: invalid value "1e3" for flag -wait: not a duration, e.g. 1s or 250ms (see -h)` + "\n", time.Second},
		{[]string{"-x"}, ExitUsage, true, "", "udpx: flag provided but not defined: -x (see -h)\n", time.Second},
		// The duration is named "duration" in -h, as the flag package's
		// own value is, not "value" as any other would be.
		{[]string{"-h"}, ExitOK, true, "USAGE\n  -version\n    \tprint the version and exit\n  -wait duration\n    \thow long to wait (default 1s)\n", "", time.Second},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs, c, wait := newSet()
			var stdout, stderr bytes.Buffer
			code, done := c.ParseCommandLine(fs, tt.args, "USAGE\n", &stdout, &stderr)
			if code != tt.code || done != tt.done || stdout.String() != tt.stdout || stderr.String() != tt.stderr || (!done && *wait != tt.wait) {
				t.Fatalf("exit %d, done %v, stdout %q, stderr %q, -wait %v; want %d, %v, %q, %q, %v",
					code, done, stdout.String(), stderr.String(), *wait, tt.code, tt.done, tt.stdout, tt.stderr, tt.wait)
			}
		})
	}
}

// TestRegisterVersionReadsNoEnvironment: bench's flags come from its
// command line alone.
func TestRegisterVersionReadsNoEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	wait := fs.Duration("wait", time.Second, "")
	c := RegisterVersion(fs, "udpx")
	t.Setenv("DISCAL_WAIT", "5s")
	t.Setenv("DISCAL_VERSION", "true")
	if err := c.Parse(fs, nil, io.Discard); err != nil || *wait != time.Second {
		t.Fatalf("Parse: %v, -wait %v", err, *wait)
	}
	if fs.Lookup("log-format") != nil {
		t.Fatal("RegisterVersion added -log-format")
	}
}

func TestUsageError(t *testing.T) {
	var b bytes.Buffer
	code := UsageError(&b, "udpx", errors.Join(errors.New("udpx: -addr: bad"), errors.New("-http-addr: bad")))
	if code != ExitUsage || b.String() != "udpx: -addr: bad; -http-addr: bad (see -h)\n" {
		t.Fatalf("exit %d, %q", code, b.String())
	}
}
