package discaltest

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ask sends pkt to addr from a fresh socket and returns the answer, or
// nil when none comes within wait.
func ask(t *testing.T, addr *net.UDPAddr, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, codec.MaxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// reply decodes an answer to id.
func reply(t *testing.T, pkt []byte, id uint64) codec.Reply {
	t.Helper()
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindReply || h.ID != id {
		t.Fatalf("header %+v, %v; want a reply to %d", h, err, id)
	}
	r, err := codec.DecodeReply(pkt[codec.HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFakeAnswers: by default the fake answers right, errors included, in
// its own name; an Answer function decides instead, sees the request's ID,
// and sends nothing when it says so; nothing but a request is answered.
func TestFakeAnswers(t *testing.T) {
	I := codec.IntNumber
	mul := codec.AppendRequest(nil, 99, codec.Request{Op: codec.OpMul, A: I(6), B: I(7)})
	div := codec.AppendRequest(nil, 98, codec.Request{Op: codec.OpDiv, A: I(1), B: I(0)})
	garbled := append(codec.AppendHeader(nil, codec.KindRequest, 97), 0xC1) // a msgpack byte that is never valid
	// lying answers a multiplication with the request's ID, and nothing
	// else at all.
	lying := func(req Request) (codec.Reply, bool) {
		return codec.Reply{Result: I(int64(req.ID)), Server: "liar"}, req.Op == codec.OpMul
	}
	tests := []struct {
		name   string
		cfg    FakeConfig
		pkt    []byte
		result string // the result or the start of the error message; "" for no answer
		server string
	}{
		{"right", FakeConfig{Name: "s9"}, mul, "42", "s9"},
		{"error", FakeConfig{}, div, "division by zero", "fake"},
		{"undecodable body", FakeConfig{}, garbled, "malformed request", "fake"},
		{"status query on the calculator port", FakeConfig{}, codec.AppendStatusQuery(nil, 1), "", ""},
		{"text", FakeConfig{}, []byte("6 * 7\n"), "", ""},
		{"answer function", FakeConfig{Answer: lying}, mul, "99", "liar"},
		{"answer function says none", FakeConfig{Answer: lying}, div, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := StartFake(t, tt.cfg)
			wait := 3 * time.Second
			if tt.result == "" {
				wait = 200 * time.Millisecond // loopback answers in microseconds
			}
			got := ask(t, f.CalcAddr, tt.pkt, wait)
			if tt.result == "" {
				if got != nil {
					t.Fatalf("answered %q", got)
				}
				return
			}
			h, _ := codec.ParseHeader(tt.pkt)
			r := reply(t, got, h.ID)
			res := r.Result.String()
			if r.Err != nil {
				res = r.Err.Message
			}
			if !strings.HasPrefix(res, tt.result) || r.Server != tt.server {
				t.Fatalf("answered %q from %q; want %q from %q", res, r.Server, tt.result, tt.server)
			}
		})
	}
}

// TestFakeDelay: with a delay, no answer comes sooner, and answers leave
// in the order their requests came.
func TestFakeDelay(t *testing.T) {
	const delay = 100 * time.Millisecond
	f := StartFake(t, FakeConfig{Delay: delay})
	c, err := net.DialUDP("udp", nil, f.CalcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	began := time.Now()
	for id := range uint64(5) {
		if _, err := c.Write(codec.AppendRequest(nil, id, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(int64(id)), B: codec.IntNumber(1)})); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, codec.MaxDatagram)
	for id := range uint64(5) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("answer %d: %v", id, err)
		}
		if d := time.Since(began); d < delay {
			t.Fatalf("answer %d after %v, sooner than the delay", id, d)
		}
		if r := reply(t, buf[:n], id); !r.Result.Equal(codec.IntNumber(int64(id) + 1)) {
			t.Fatalf("answer to %d: %v", id, r.Result)
		}
	}
}

// TestFakeStatus: the status port answers every query with the status
// given, or an idle one in the fake's name, with its calculator port; and
// nothing else. (Host cores go on the wire only with a host ID.)
func TestFakeStatus(t *testing.T) {
	tests := []struct {
		name string
		cfg  FakeConfig
		want codec.Status
	}{
		{"default", FakeConfig{Name: "h1"}, codec.Status{Server: "h1", Cores: 2}},
		{"given", FakeConfig{Status: &codec.Status{Server: "rogue", Cores: 64, HostID: "box", ProcID: "p", HostCores: 64}},
			codec.Status{Server: "rogue", Cores: 64, HostID: "box", ProcID: "p", HostCores: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := StartFake(t, tt.cfg)
			for id := range uint64(2) {
				got := ask(t, f.StatusAddr, codec.AppendStatusQuery(nil, id), 3*time.Second)
				h, err := codec.ParseHeader(got)
				if err != nil || h.Kind != codec.KindStatusReply || h.ID != id {
					t.Fatalf("header %+v, %v; want a status for %d", h, err, id)
				}
				st, err := codec.DecodeStatus(got[codec.HeaderSize:])
				if err != nil {
					t.Fatal(err)
				}
				if int(st.CalcPort) != f.CalcAddr.Port {
					t.Errorf("calculator port %d; want %d", st.CalcPort, f.CalcAddr.Port)
				}
				st.Uptime, st.CalcPort = 0, 0
				if st != tt.want {
					t.Errorf("status %+v; want %+v", st, tt.want)
				}
			}
			if got := ask(t, f.StatusAddr, codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpAdd}), 200*time.Millisecond); got != nil {
				t.Errorf("a request on the status port was answered %q", got)
			}
		})
	}
}

// TestFakeClose: Close stops both ports, with answers still held back,
// and may be called again.
func TestFakeClose(t *testing.T) {
	f, err := ListenFake(FakeConfig{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := ask(t, f.CalcAddr, codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpAdd}), 50*time.Millisecond); got != nil {
		t.Fatalf("answered %q before the hour", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.WriteTo([]byte("x"), f.StatusAddr); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
}
