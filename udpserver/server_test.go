package udpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/eventually"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is an io.Writer the test can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testServer struct {
	*Server
	calc, status *net.UDPAddr
	log          *syncBuffer
	served       chan error
}

// start runs a server on two sockets the test opened on 127.0.0.1:0, so it
// is ready before start returns; cleanup shuts it down and checks that Serve
// returned ErrServerClosed.
func start(t *testing.T, cfg Config, prepare ...func(*Server)) *testServer {
	t.Helper()
	calc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	status, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{calc: calc.LocalAddr().(*net.UDPAddr), status: status.LocalAddr().(*net.UDPAddr),
		log: new(syncBuffer), served: make(chan error, 1)}
	if cfg.OpLog == nil {
		cfg.OpLog = ts.log
	}
	if cfg.Name == "" {
		cfg.Name = "t1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ts.Server, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prepare {
		p(ts.Server)
	}
	go func() { ts.served <- ts.Serve(calc, status) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	ts.served <- ErrServerClosed // a second stop finds it again
}

func dial(t *testing.T, addr *net.UDPAddr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends one datagram and returns the answer, failing after 2s.
func exchange(t *testing.T, c *net.UDPConn, pkt []byte) []byte {
	t.Helper()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2*codec.MaxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %q: %v", pkt, err)
	}
	return buf[:n]
}

func mp(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawRequest(id uint64, body []byte) []byte {
	return append(codec.AppendHeader(nil, codec.KindRequest, id), body...)
}

func TestCalculatorBinary(t *testing.T) {
	ts := start(t, Config{})
	c := dial(t, ts.calc)
	I, F := codec.IntNumber, codec.FloatNumber
	req := func(op codec.Op, a, b codec.Number) []byte {
		return codec.AppendRequest(nil, 0, codec.Request{Op: op, A: a, B: b})
	}
	tests := []struct {
		name string
		pkt  []byte
		want codec.Number
		code codec.Code
	}{
		{"add", req(codec.OpAdd, I(2), I(3)), I(5), 0},
		{"div inexact", req(codec.OpDiv, I(7), I(2)), F(3.5), 0},
		{"div exact", req(codec.OpDiv, I(-42), I(7)), I(-6), 0},
		{"float mul", req(codec.OpMul, F(1.5), I(4)), F(6), 0},
		{"division by zero", req(codec.OpDiv, I(1), I(0)), codec.Number{}, codec.CodeDivByZero},
		{"overflow", req(codec.OpAdd, I(math.MaxInt64), I(1)), codec.Number{}, codec.CodeOverflow},
		{"NaN", req(codec.OpAdd, F(math.NaN()), I(1)), codec.Number{}, codec.CodeNaN},
		{"infinite operand", req(codec.OpSub, I(1), F(math.Inf(1))), codec.Number{}, codec.CodeInfinite},
		{"infinite result", req(codec.OpMul, F(1e200), F(1e200)), codec.Number{}, codec.CodeNotFinite},
		{"unknown op", rawRequest(0, mp(t, map[string]any{"op": "pow", "a": 1, "b": 2})), codec.Number{}, codec.CodeUnknownOp},
		{"missing field", rawRequest(0, mp(t, map[string]any{"op": "add", "a": 1})), codec.Number{}, codec.CodeMissingField},
		{"wrong type", rawRequest(0, mp(t, map[string]any{"op": "add", "a": 1, "b": "2"})), codec.Number{}, codec.CodeWrongType},
		{"malformed", rawRequest(0, []byte{0xc1}), codec.Number{}, codec.CodeMalformed},
		{"no body", rawRequest(0, nil), codec.Number{}, codec.CodeMalformed},
		{"too large", rawRequest(0, make([]byte, codec.MaxDatagram)), codec.Number{}, codec.CodeTooLarge},
		{"status query on the calculator port", codec.AppendStatusQuery(nil, 0), codec.Number{}, codec.CodeUnexpected},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint64(1000 + i)
			codec.SetID(tt.pkt, id)
			got := exchange(t, c, tt.pkt)
			h, err := codec.ParseHeader(got)
			if err != nil || h != (codec.Header{Kind: codec.KindReply, ID: id}) {
				t.Fatalf("reply header %+v, %v; want reply to %d", h, err, id)
			}
			r, err := codec.DecodeReply(got[codec.HeaderSize:])
			if err != nil {
				t.Fatal(err)
			}
			if r.Server != "t1" {
				t.Errorf("server = %q, want t1", r.Server)
			}
			if tt.code != 0 {
				if r.Err == nil || r.Err.Code != tt.code {
					t.Fatalf("reply %+v, want error code %d", r, tt.code)
				}
				return
			}
			if r.Err != nil || !r.Result.Equal(tt.want) {
				t.Fatalf("reply %+v (err %v), want %v", r, r.Err, tt.want)
			}
		})
	}
}

func TestCalculatorText(t *testing.T) {
	ts := start(t, Config{})
	c := dial(t, ts.calc)
	tests := []struct{ in, want string }{
		{"6 * 7\n", "42\n"},
		{"7 / 2", "3.5\n"},
		{"add 2 3\n", "5\n"},
		{"1 / 0\n", "error: division by zero\n"},
		{"9223372036854775807 + 1\n", "error: integer overflow\n"},
		{"nan + 1\n", "error: operand is NaN\n"},
		{"hello\n", "error: syntax error: \"hello\" is not a number\n"},
		{"1 2 + 3\n", "error: syntax error: want NUMBER OP NUMBER or OP NUMBER NUMBER\n"},
	}
	for _, tt := range tests {
		if got := string(exchange(t, c, []byte(tt.in))); got != tt.want {
			t.Errorf("%q answered %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOperationLog(t *testing.T) {
	ts := start(t, Config{Name: "logger"})
	c := dial(t, ts.calc)
	exchange(t, c, codec.AppendRequest(nil, 0x2a, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)}))
	exchange(t, c, []byte("1 / 0\n"))
	ts.stop(t) // flushes the buffered log
	log := ts.log.String()
	for _, want := range []string{" logger id=000000000000002a 6 * 7 = 42\n", " logger id=text 1 / 0 = error: division by zero\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %q lacks %q", log, want)
		}
	}
	if n := strings.Count(log, "\n"); n != 2 {
		t.Errorf("log has %d lines, want 2:\n%s", n, log)
	}
}

func TestQuietLogsNothing(t *testing.T) {
	ts := start(t, Config{Quiet: true})
	exchange(t, dial(t, ts.calc), []byte("1 + 1"))
	ts.stop(t)
	if s := ts.log.String(); s != "" {
		t.Fatalf("quiet server logged %q", s)
	}
}

func TestStatusPort(t *testing.T) {
	ts := start(t, Config{SampleInterval: 100 * time.Millisecond})
	calc, status := dial(t, ts.calc), dial(t, ts.status)
	exchange(t, calc, []byte("1 + 1"))
	exchange(t, calc, []byte("1 / 0"))

	// Wait for the sampler's first tick, so that the figures checked
	// below are measurements and not the zero they start at.
	eventually.True(t, 5*time.Second, "the sampler measured nothing", func() bool {
		return ts.sampler.HostCPU() != 0 || ts.sampler.ProcCPU() != 0
	})
	got := exchange(t, status, codec.AppendStatusQuery(nil, 77))
	h, err := codec.ParseHeader(got)
	if err != nil || h != (codec.Header{Kind: codec.KindStatusReply, ID: 77}) {
		t.Fatalf("status header %+v, %v", h, err)
	}
	st, err := codec.DecodeStatus(got[codec.HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if st.Server != "t1" || st.Served != 2 || st.Errors != 1 || st.Cores < 1 || st.Uptime <= 0 || st.Uptime > time.Minute ||
		st.HostCPU < 0 || st.HostCPU > 100 || st.ProcCPU < 0 || st.ProcCPU > 100*float64(st.Cores) || st.HostCPU+st.ProcCPU == 0 {
		t.Fatalf("status %+v", st)
	}

	line := string(exchange(t, status, []byte("status\n")))
	if !strings.HasPrefix(line, "server=t1 host_cpu=") || !strings.Contains(line, " served=2 errors=1 ") || !strings.HasSuffix(line, "\n") {
		t.Fatalf("status line %q", line)
	}
	if got := string(exchange(t, status, []byte("reboot\n"))); got != "error: unexpected message: try status, burn, drain, undrain\n" {
		t.Fatalf("unknown command answered %q", got)
	}
	reply := exchange(t, status, codec.AppendRequest(nil, 5, codec.Request{Op: codec.OpAdd}))
	if r, err := codec.DecodeReply(reply[codec.HeaderSize:]); err != nil || r.Err == nil || r.Err.Code != codec.CodeUnexpected {
		t.Fatalf("request on the status port answered %+v, %v", r, err)
	}
}

// TestSamplerMeasures burns CPU in this process and waits for the sampler,
// a real gopsutil reading, to see it.
func TestSamplerMeasures(t *testing.T) {
	s := newSampler(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	x := 1.0
	for s.ProcCPU() <= 0 || s.HostCPU() <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sampler saw no CPU use: proc %v host %v", s.ProcCPU(), s.HostCPU())
		}
		for range 1_000_000 {
			x = math.Sqrt(x + 1)
		}
	}
	if s.HostCPU() > 100 || s.ProcCPU() > 100*float64(s.cores) {
		t.Fatalf("figures out of range: host %v proc %v", s.HostCPU(), s.ProcCPU())
	}
}

// TestGarbageStopsNothing sends random and mutated datagrams to both ports;
// a well-formed request afterwards is still answered, and the garbage that
// could not be answered was counted.
func TestGarbageStopsNothing(t *testing.T) {
	ts := start(t, Config{Quiet: true})
	calc, status := dial(t, ts.calc), dial(t, ts.status)
	r := rand.New(rand.NewPCG(3, 4))
	good := codec.AppendRequest(nil, 9, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(2)})
	for i := range 2000 {
		var pkt []byte
		switch i % 4 {
		case 0:
			pkt = make([]byte, r.IntN(40))
			for j := range pkt {
				pkt[j] = byte(r.UintN(256))
			}
		case 1:
			pkt = bytes.Clone(good[:r.IntN(len(good))])
		case 2:
			pkt = bytes.Clone(good)
			pkt[r.IntN(len(pkt))] ^= byte(1 + r.UintN(255))
		case 3:
			pkt = codec.AppendHeader(nil, codec.Kind(r.UintN(256)), r.Uint64())
		}
		_, _ = calc.Write(pkt)
		_, _ = status.Write(pkt)
	}
	// Drain whatever answers came back, then check a good request.
	for {
		_ = calc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := calc.Read(make([]byte, 1024)); err != nil {
			break
		}
	}
	got := exchange(t, calc, good)
	if rep, err := codec.DecodeReply(got[codec.HeaderSize:]); err != nil || !rep.Result.Equal(codec.IntNumber(3)) {
		t.Fatalf("after garbage: %+v, %v", rep, err)
	}
	if ts.Stats().Dropped == 0 {
		t.Fatal("no garbage was counted as dropped")
	}
}

func TestShutdownTwiceAndServeAfterClose(t *testing.T) {
	ts := start(t, Config{Quiet: true})
	ts.stop(t)
	if err := ts.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	a, _ := net.ListenPacket("udp", "127.0.0.1:0")
	b, _ := net.ListenPacket("udp", "127.0.0.1:0")
	if err := ts.Serve(a, b); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
}

// TestStatusNeverWaitsForAMeasurement blocks the sampler in the middle of
// a measurement: the status port must still answer, from the last figures.
func TestStatusNeverWaitsForAMeasurement(t *testing.T) {
	calc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	status, _ := net.ListenPacket("udp", "127.0.0.1:0")
	// The process's servers share a sampler for each interval: this one,
	// at an interval no other test uses, is this test's alone.
	s, err := New(Config{Quiet: true, SampleInterval: 233 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	measuring := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	real := s.sampler.measure
	s.sampler.measure = func() {
		once.Do(func() { close(measuring) })
		<-release
	}
	defer func() { s.sampler.measure = real }()
	served := make(chan error, 1)
	go func() { served <- s.Serve(calc, status) }()
	<-measuring // the sampler is now stuck inside a measurement
	c := dial(t, status.LocalAddr().(*net.UDPAddr))
	got := exchange(t, c, codec.AppendStatusQuery(nil, 1))
	if _, err := codec.DecodeStatus(got[codec.HeaderSize:]); err != nil {
		t.Fatalf("status while measuring: %v", err)
	}
	close(release)
	s.Close()
	<-served
}

// TestErrorLinesAreNotAnswered: a text error line is an answer; answering
// it could set two endpoints bouncing errors forever.
func TestErrorLinesAreNotAnswered(t *testing.T) {
	ts := start(t, Config{Quiet: true})
	for _, addr := range []*net.UDPAddr{ts.calc, ts.status} {
		c := dial(t, addr)
		if _, err := c.Write([]byte("error: syntax error\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(make([]byte, 100)); err == nil {
			t.Fatalf("an error line got an answer of %d bytes", n)
		}
	}
	// The same socket still gets answers to questions.
	if got := string(exchange(t, dial(t, ts.calc), []byte("2+2"))); got != "4\n" {
		t.Fatalf("got %q", got)
	}
}

// TestStalledConsole: a console that never reads must not stop the server
// answering, nor stop it shutting down; the lines it could not take are
// counted.
func TestStalledConsole(t *testing.T) {
	old := maxBacklog
	maxBacklog = 4 << 10
	defer func() { maxBacklog = old }()
	r, w := io.Pipe() // nothing reads r: every write blocks
	defer r.Close()
	ts := start(t, Config{OpLog: w})
	c := dial(t, ts.calc)
	for i := range 500 {
		want := fmt.Sprintf("%d\n", i+1)
		if got := string(exchange(t, c, []byte(fmt.Sprintf("%d + 1", i)))); got != want {
			t.Fatalf("request %d answered %q", i, got)
		}
	}
	if ts.Stats().LogDropped == 0 {
		t.Fatal("no log lines counted as dropped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stalled console = %v, want the context's deadline", err)
	}
	if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	ts.served <- ErrServerClosed
	r.Close() // unblocks the log writer, so that it ends before goleak looks
	<-ts.oplog.done
}

// TestBurn sets a burn through the status port and waits for the sampler,
// a real measurement, to see this process use the CPU it burns.
func TestBurn(t *testing.T) {
	ts := start(t, Config{Quiet: true, SampleInterval: 100 * time.Millisecond})
	c := dial(t, ts.status)
	if got := string(exchange(t, c, []byte("burn 0.6\n"))); got != "ok: burn 0.6\n" {
		t.Fatalf("burn answered %q", got)
	}
	if ts.Burn() != 0.6 {
		t.Fatalf("Burn() = %v", ts.Burn())
	}
	eventually.True(t, 10*time.Second, "process CPU under 40% while burning 60% of a core", func() bool {
		return ts.sampler.ProcCPU() >= 40
	})
	if line := string(exchange(t, c, []byte("status"))); !strings.HasSuffix(line, " burn=0.6\n") {
		t.Fatalf("status line %q", line)
	}
	for _, bad := range []string{"burn", "burn 2", "burn -1", "burn x", "burn nan"} {
		if got := string(exchange(t, c, []byte(bad))); !strings.HasPrefix(got, "error: syntax error") {
			t.Errorf("%q answered %q", bad, got)
		}
	}
	if got := string(exchange(t, c, []byte("burn 0"))); got != "ok: burn 0\n" || ts.Burn() != 0 {
		t.Fatalf("burn 0 answered %q, Burn() = %v", got, ts.Burn())
	}
}

// TestAllowList: a server allowed to answer only 10.0.0.0/8 gets requests
// and commands from loopback and answers none of them, burn included.
func TestAllowList(t *testing.T) {
	ts := start(t, Config{Quiet: true, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, c := range []struct {
		addr *net.UDPAddr
		pkt  []byte
	}{
		{ts.calc, []byte("6 * 7")},
		{ts.calc, codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(1)})},
		{ts.status, []byte("burn 1")},
		{ts.status, codec.AppendStatusQuery(nil, 2)},
	} {
		conn := dial(t, c.addr)
		if _, err := conn.Write(c.pkt); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := conn.Read(make([]byte, 1024)); err == nil {
			t.Fatalf("%q from loopback answered with %d bytes", c.pkt, n)
		}
	}
	if ts.Burn() != 0 {
		t.Fatal("a burn from a source not allowed took effect")
	}
	// The reads above waited out their deadlines; the server counted all four.
	if got := ts.Stats().Denied; got != 4 {
		t.Fatalf("denied %d, want 4", got)
	}
	if _, err := ParseAllow("10.0.0.0/8, 192.168.1.7,::1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAllow("10.0.0.0/33"); err == nil {
		t.Fatal("a bad network parsed")
	}
}

// TestAmplificationBound: no reply is more than codec.MaxAmplification
// times its request; what would be is sent in its short form, and text too
// short to be a question gets no answer.
func TestAmplificationBound(t *testing.T) {
	ts := start(t, Config{Quiet: true, Name: strings.Repeat("n", 64)})
	c := dial(t, ts.calc)
	for _, pkt := range [][]byte{
		codec.AppendHeader(nil, codec.KindRequest, 7),                              // 10 bytes, no body
		append(codec.AppendHeader(nil, codec.KindRequest, 8), 0xc1),                // an invalid code
		rawRequest(9, mp(t, map[string]any{"op": "exponentiate", "a": 1, "b": 2})), // a long unknown op
		[]byte("xyz"), []byte("1/0"), []byte("1/3"), []byte("nan+1"), []byte("abc\n"), // short text
	} {
		got := exchange(t, c, pkt)
		if len(got) > codec.MaxAmplification*len(pkt) {
			t.Errorf("%q (%d bytes) answered with %d bytes: %q", pkt, len(pkt), len(got), got)
		}
	}
	if got := string(exchange(t, c, []byte("1/0"))); got != "error: division by zero\n" {
		t.Errorf("1/0 answered %q: the full message fits and should be sent", got)
	}
	if got := string(exchange(t, c, []byte("xyz"))); got != "error: syntax error\n" {
		t.Errorf("xyz answered %q, want the short form", got)
	}
	for _, tiny := range []string{"1", "1+", "\n\n"} {
		if _, err := c.Write([]byte(tiny)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(make([]byte, 1024)); err == nil {
			t.Errorf("%q answered with %d bytes", tiny, n)
		}
	}

	// The status port: commands and errors keep to the bound, and a binary
	// status query is answered only when padded (as the proxy's are).
	st := dial(t, ts.status)
	for _, pkt := range [][]byte{[]byte("burn"), []byte("bur"), []byte("reboot"), []byte("drain\n"), []byte("undrain"),
		codec.AppendRequest(nil, 3, codec.Request{Op: codec.OpAdd})} {
		got := exchange(t, st, pkt)
		if len(got) > codec.MaxAmplification*len(pkt) {
			t.Errorf("status port: %q (%d bytes) answered with %d bytes: %q", pkt, len(pkt), len(got), got)
		}
	}
	if got := exchange(t, st, codec.AppendStatusQuery(nil, 4)); len(got) <= codec.HeaderSize {
		t.Fatalf("a padded status query answered %q", got)
	}
	if _, err := st.Write(codec.AppendHeader(nil, codec.KindStatusQuery, 5)); err != nil {
		t.Fatal(err)
	}
	_ = st.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := st.Read(make([]byte, 1024)); err == nil {
		t.Errorf("an unpadded status query answered with %d bytes", n)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{{Workers: -1}, {SampleInterval: time.Second}, {SampleInterval: 10 * time.Millisecond},
		{Name: "has space"}, {Name: strings.Repeat("x", 65)}, {Name: "tab\t"}, {Burn: 1.5}, {Burn: -0.1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func BenchmarkHandleCalc(b *testing.B) {
	s, err := New(Config{Quiet: true, Name: "b"})
	if err != nil {
		b.Fatal(err)
	}
	w := newWorker(nil)
	pkt := codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})
	b.ReportAllocs()
	for b.Loop() {
		if s.handleCalc(w, pkt, w.reply(0)) == nil {
			b.Fatal("no reply")
		}
	}
}

// TestShutdownFinishesInFlight: a burst of requests, then Shutdown at once:
// every request the server took in was answered before it stopped.
func TestShutdownFinishesInFlight(t *testing.T) {
	ts := start(t, Config{Quiet: true})
	c := dial(t, ts.calc)
	_ = c.SetReadBuffer(4 << 20)
	const n = 3000
	for i := range n {
		if _, err := c.Write(codec.AppendRequest(nil, uint64(i), codec.Request{Op: codec.OpAdd, A: codec.IntNumber(int64(i)), B: codec.IntNumber(1)})); err != nil {
			t.Fatal(err)
		}
	}
	ts.stop(t) // Shutdown while the burst is being served
	served := ts.Stats().Served
	if served == 0 {
		t.Fatal("nothing was served before the shutdown")
	}
	got := 0
	buf := make([]byte, 1024)
	for {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		k, err := c.Read(buf)
		if err != nil {
			break
		}
		h, _ := codec.ParseHeader(buf[:k])
		r, err := codec.DecodeReply(buf[codec.HeaderSize:k])
		if err != nil || !r.Result.Equal(codec.IntNumber(int64(h.ID)+1)) {
			t.Fatalf("reply to %d: %+v, %v", h.ID, r, err)
		}
		got++
	}
	if uint64(got) != served {
		t.Fatalf("served %d before stopping, but %d answers arrived", served, got)
	}
	t.Logf("%d of %d requests taken in before the shutdown, all answered", served, n)
}

// TestJoinAllowsTheProxy: a proxy the server joins may use it, beside the
// networks of Allow; a join target that does not resolve is an error.
func TestJoinAllowsTheProxy(t *testing.T) {
	s, err := New(Config{Join: []string{"192.0.2.7:7000", "127.0.0.1:7000"}, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"192.0.2.7:1": true, "127.0.0.1:1": true, "192.0.2.8:1": false} {
		if got := s.allowed(netip.MustParseAddrPort(addr)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	if len(s.cfg.Allow) != len(DefaultAllow())+1 {
		t.Errorf("allow list %v: loopback was added again", s.cfg.Allow)
	}
	for _, bad := range []string{"no port", ":7000", "0.0.0.0:7000", "127.0.0.1:0"} {
		if _, err := New(Config{Join: []string{bad}}); err == nil {
			t.Errorf("join target %q was taken", bad)
		}
	}
}

// TestJoinAckMustMatch: an acknowledgement that answers no join awaited
// (a stray or forged one) is dropped and counted, and joins nothing.
func TestJoinAckMustMatch(t *testing.T) {
	proxy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	ts := start(t, Config{Quiet: true, Join: []string{proxy.LocalAddr().String()}, JoinInterval: time.Hour})
	buf := make([]byte, codec.MaxDatagram)
	_ = proxy.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := proxy.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	h, err := codec.ParseHeader(buf[:n])
	if err != nil || h.Kind != codec.KindJoin || from.Port() != uint16(ts.status.Port) {
		t.Fatalf("got %x from %v, want a join from the status port %v", buf[:n], from, ts.status)
	}
	j, err := codec.DecodeJoin(buf[codec.HeaderSize:n])
	if err != nil || int(j.CalcPort) != ts.calc.Port {
		t.Fatalf("join %+v, %v; want calc port %d", j, err, ts.calc.Port)
	}
	dropped := ts.Stats().Dropped
	if _, err := proxy.WriteToUDPAddrPort(codec.AppendJoinAck(nil, h.ID+1), from); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "a wrong ack was not counted", func() bool { return ts.Stats().Dropped != dropped })
	if ts.Joined()[proxy.LocalAddr().String()] {
		t.Fatal("a wrong ack joined")
	}
	if _, err := proxy.WriteToUDPAddrPort(codec.AppendJoinAck(nil, h.ID), from); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the right ack did not join", func() bool { return ts.Joined()[proxy.LocalAddr().String()] })
}
