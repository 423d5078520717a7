package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/udpserver"
)

// startKeyed runs a real udpserver with a control key (nil for none) and
// returns it and its status port.
func startKeyed(t *testing.T, key []byte) (*udpserver.Server, string) {
	t.Helper()
	srv, _, status := discaltest.StartServer(t, udpserver.Config{Name: "k1", ControlKey: key})
	return srv, status.String()
}

// testKey returns a 32-byte key, one for each b, with 32 different byte
// values: -control-key refuses a key of fewer than 16.
func testKey(b byte) []byte {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7) ^ b
	}
	return key
}

func keyFile(t *testing.T, b byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(f, testKey(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestControlCommand: -status-addr sends drain, undrain and burn F, sealed
// with -control-key, and its exit status says whether the server
// confirmed. A seal under another key is refused unanswered: exit 2.
func TestControlCommand(t *testing.T) {
	good, bad := keyFile(t, 0x5a), keyFile(t, 0xa5)
	srv, addr := startKeyed(t, testKey(0x5a))
	plain, plainAddr := startKeyed(t, nil)
	tests := []struct {
		name  string
		args  []string
		code  int
		out   string
		check func() bool
	}{
		{"sealed drain", []string{"-status-addr", addr, "-control-key", good, "drain"}, exitOK, "ok: drain\n", srv.Draining},
		{"sealed undrain", []string{"-status-addr", addr, "-control-key", good, "undrain"}, exitOK, "ok: undrain\n", func() bool { return !srv.Draining() }},
		{"sealed burn", []string{"-status-addr", addr, "-control-key", good, "burn", "0.5"}, exitOK, "ok: burn 0.5\n", func() bool { return srv.Burn() == 0.5 }},
		{"another key", []string{"-status-addr", addr, "-control-key", bad, "-timeout", "100ms", "-retries", "1", "drain"}, exitNoAnswer, "",
			func() bool { return !srv.Draining() && srv.Stats().Unauthenticated == 2 }},
		{"no key, loopback", []string{"-status-addr", addr, "burn", "0"}, exitOK, "ok: burn 0\n", func() bool { return srv.Burn() == 0 }},
		{"server without key", []string{"-status-addr", plainAddr, "-control-key", good, "drain"}, exitOK, "ok: drain\n", plain.Draining},
		{"nothing listens", []string{"-status-addr", refusing(t), "-timeout", "50ms", "-retries", "0", "drain"}, exitNoAnswer, "", nil},
		{"burn out of range", []string{"-status-addr", addr, "burn", "2"}, exitUsage, "", nil},
		{"not a command", []string{"-status-addr", addr, "reboot"}, exitUsage, "", nil},
		{"no command", []string{"-status-addr", addr}, exitUsage, "", nil},
		{"bad address", []string{"-status-addr", "nowhere", "drain"}, exitUsage, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCmd(t, strings.NewReader(""), tt.args...)
			if code != tt.code || out != tt.out {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, errOut, tt.code, tt.out)
			}
			if tt.check != nil && !tt.check() {
				t.Fatal("the server is not as the command said")
			}
		})
	}
}
