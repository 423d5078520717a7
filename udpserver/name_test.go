package udpserver

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/internal/eventually"
)

// TestDefaultName: a server bound to one address is named after it; one
// bound to all interfaces (as in every container, [::]:7001) after its
// host, with the port, cut to the longest name a reply carries.
func TestDefaultName(t *testing.T) {
	long := strings.Repeat("h", 70)
	tests := []struct {
		name     string
		addr     string
		hostname string
		err      error
		want     string
	}{
		{"loopback", "127.0.0.1:7001", "pod-1", nil, "127.0.0.1:7001"},
		{"one address", "10.0.0.6:7002", "pod-1", nil, "10.0.0.6:7002"},
		{"v6 address", "[fd00::6]:7001", "pod-1", nil, "[fd00::6]:7001"},
		{"v6 wildcard", "[::]:7001", "discal-server-7d9c-x2x4q", nil, "discal-server-7d9c-x2x4q:7001"},
		{"v4 wildcard", "0.0.0.0:7003", "s1.example.org", nil, "s1.example.org:7003"},
		{"long host", "[::]:7001", long, nil, long[:maxName-5] + ":7001"},
		{"no host name", "[::]:7001", "", errors.New("uname failed"), "[::]:7001"},
		{"empty host name", "[::]:7001", "", nil, "[::]:7001"},
		{"host name with a space", "[::]:7001", "my host", nil, "[::]:7001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := net.ResolveUDPAddr("udp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			got := defaultName(a, func() (string, error) { return tt.hostname, tt.err })
			if got != tt.want {
				t.Fatalf("defaultName(%s) with host %q = %q, want %q", tt.addr, tt.hostname, got, tt.want)
			}
			if !validName(got) {
				t.Fatalf("%q is not a name a server may have", got)
			}
		})
	}
}

// TestServeNamesAfterHost: a server serving a wildcard socket reports the
// host's name, not [::].
func TestServeNamesAfterHost(t *testing.T) {
	calc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultName(calc.LocalAddr())
	if strings.HasPrefix(want, "[::]") || strings.HasPrefix(want, "0.0.0.0") {
		calc.Close()
		t.Skipf("this host has no usable name (%q): nothing to tell apart", want)
	}
	s, _ := serveOn(t, Config{}, calc, listen(t))
	eventually.True(t, 5*time.Second, "serving", func() bool { ok, _ := s.Ready(); return ok })
	if got := s.Name(); got != want {
		t.Fatalf("Name() = %q, want %q", got, want)
	}
}
