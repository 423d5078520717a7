package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
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
		clitest.Case{Args: []string{"-drain-grace", "-1s"}, Code: 64,
			Stderr: `udpserver: -drain-grace -1s: must not be negative (see -h)` + "\n"},
	)
}

// TestControlKeyFile: -gen-key makes a key that -control-key takes; a weak
// key or one others may read is refused in one line, exit 1.
func TestControlKeyFile(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.key")
	var stdout, stderr bytes.Buffer
	if o, code := parseFlags([]string{"-gen-key", gen}, &stdout, &stderr); o != nil || code != 0 ||
		stderr.String() != "udpserver: wrote a new control key to "+gen+"\n" {
		t.Fatalf("-gen-key: exit %d, stderr %q", code, stderr.String())
	}
	if o, code := parseFlags([]string{"-control-key", gen}, io.Discard, io.Discard); o == nil || len(o.cfg.ControlKey) != 32 {
		t.Fatalf("-control-key with -gen-key's key: exit %d", code)
	}
	write := func(name string, key []byte, mode os.FileMode) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, key, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tt := range []struct {
		file, want string
	}{
		{write("zero.key", make([]byte, 32), 0o600), "weak key"},
		{write("open.key", []byte(strings.Repeat("0123456789abcdef", 2)), 0o644), "readable by others"},
	} {
		stderr.Reset()
		o, code := parseFlags([]string{"-control-key", tt.file}, io.Discard, &stderr)
		if o != nil || code != 1 || !strings.Contains(stderr.String(), tt.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("-control-key %s: exit %d, stderr %q; want 1 and %q on one line", tt.file, code, stderr.String(), tt.want)
		}
	}
}
