package udpproxy

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
)

// lockedBuffer is a log destination the proxy's goroutines and the test
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the log's lines that hold s.
func (l *lockedBuffer) lines(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.b.String()) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestRefusalsAreLogged: a datagram the proxy refuses for a reason the
// operator can change (a source over -rate-limit, a join from outside
// -join-allow, a join not sealed under -control-key) is logged with its
// source and the setting, once a second at most for each reason, however
// many come; each is counted.
func TestRefusalsAreLogged(t *testing.T) {
	log := new(lockedBuffer)
	p, err := New(Config{Servers: []ServerAddr{{Calc: "127.0.0.1:9", Status: "127.0.0.1:9"}},
		RateLimit: 1, RateBurst: 1, JoinAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		ControlKey: bytes.Repeat([]byte{0x5a}, codec.MinKeySize), Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(conn) }()
	defer func() {
		p.Close()
		<-done
	}()
	c, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(1)})
	for range 50 {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 5*time.Second, "the flood shed", func() bool { return p.Stats().Drops["rate_limited"] >= 40 })
	checkOneLine(t, log, "over -rate-limit", "from=127.0.0.1:", "rate_limit=1", "rate_burst=1")

	// Joins reach the membership from the client readers (outside
	// -join-allow) and its own goroutine (the seal), as here.
	for i := range 20 {
		p.members.offerJoin(codec.AppendJoin(nil, 2, codec.Join{CalcPort: 7001}), netip.MustParseAddrPort("192.0.2.1:7101"), 2, nanotime())
		p.members.join(joinOffer{from: netip.MustParseAddrPort("10.0.0.9:7101"), id: uint64(i),
			pkt: codec.AppendJoin(nil, uint64(i), codec.Join{CalcPort: 7001})})
	}
	st := p.Stats()
	if st.Drops["join_refused"] != 20 || st.Drops["unauthenticated"] != 20 {
		t.Errorf("counted %d joins refused and %d unauthenticated, want 20 of each", st.Drops["join_refused"], st.Drops["unauthenticated"])
	}
	checkOneLine(t, log, "outside -join-allow", "from=192.0.2.1:7101", "join_allow=10.0.0.0/8")
	checkOneLine(t, log, "not sealed under -control-key", "from=10.0.0.9:7101")
}

// checkOneLine checks that the log holds one line with what, and that it
// says each of want: the refusals behind it came within a second.
func checkOneLine(t *testing.T, log *lockedBuffer, what string, want ...string) {
	t.Helper()
	lines := log.lines(what)
	if len(lines) < 1 || len(lines) > 2 {
		t.Fatalf("%d lines with %q, want one (two if a second passed):\n%s", len(lines), what, strings.Join(lines, ""))
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("the line %q lacks %q", lines[0], w)
		}
	}
}
