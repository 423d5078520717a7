package udpserver

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
)

// TestRefusalsAreLogged: a datagram refused for a reason the operator can
// change says so in the log, with its source and the flag to change, once
// a second at most however many come; and it is still counted each time.
func TestRefusalsAreLogged(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		port  func(*testServer) string
		send  []byte
		count func(Stats) uint64
		want  []string
	}{
		{"calc port, outside -allow", Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			func(ts *testServer) string { return ts.calc.String() }, []byte("6 * 7"),
			func(s Stats) uint64 { return s.Denied },
			[]string{"datagram refused: its source is not in -allow", "from=127.0.0.1:", "port=calc", "allow=10.0.0.0/8"}},
		{"status port, outside -allow", Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.7/32")}},
			func(ts *testServer) string { return ts.status.String() }, []byte("status"),
			func(s Stats) uint64 { return s.Denied },
			[]string{"datagram refused: its source is not in -allow", "port=status", "allow=10.0.0.7"}},
		{"control without a seal", Config{ControlKey: testKey},
			func(ts *testServer) string { return ts.status.String() }, codec.AppendControl(nil, 9, codec.Control{Cmd: codec.CmdDrain}),
			func(s Stats) uint64 { return s.Unauthenticated },
			[]string{"control refused: not sealed under -control-key", "from=127.0.0.1:", "why="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := new(syncBuffer)
			tt.cfg.Quiet, tt.cfg.Logger = true, slog.New(slog.NewTextHandler(log, nil))
			ts := start(t, tt.cfg, untrusted)
			c := dial(t, udpAddr(t, tt.port(ts)))
			const n = 50
			for range n {
				if _, err := c.Write(tt.send); err != nil {
					t.Fatal(err)
				}
			}
			eventually.True(t, 5*time.Second, "every refusal counted", func() bool { return tt.count(ts.Stats()) == n })
			lines := refusalLines(log.String())
			if len(lines) == 0 {
				t.Fatalf("no log line for %d refused datagrams; the log:\n%s", n, log.String())
			}
			// 50 datagrams take far less than the two seconds that would
			// allow a second line.
			if len(lines) > 2 {
				t.Errorf("%d lines for one kind of refusal, want one a second at most:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("the line %q lacks %q", lines[0], w)
				}
			}
		})
	}
}

func refusalLines(log string) []string {
	var out []string
	for l := range strings.Lines(log) {
		if strings.Contains(l, "refused") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func udpAddr(t *testing.T, s string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
