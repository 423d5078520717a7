package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/eventually"
	"github.com/discal/discal/udpserver"
)

// startServer runs a real udpserver and returns its calculator port, which
// answers the client as a proxy would.
func startServer(t *testing.T, name string) string {
	t.Helper()
	_, calc, _ := discaltest.StartServer(t, udpserver.Config{Name: name})
	return calc.String()
}

// startHostile runs a fake server whose calculator port answers every
// request with the reply answer returns, so that a test can send what no
// honest server would.
func startHostile(t *testing.T, answer func(req codec.Request) codec.Reply) string {
	t.Helper()
	f := discaltest.StartFake(t, discaltest.FakeConfig{Answer: func(req discaltest.Request) (codec.Reply, bool) {
		return answer(req.Request), true
	}})
	return f.CalcAddr.String()
}

// refusing returns an address where nothing listens.
func refusing(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// runCmd runs the command in-process with stdin and returns what it wrote.
func runCmd(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	code = run(ctx, args, stdin, &o, &e)
	if ctx.Err() != nil {
		t.Fatalf("udpclient %q did not finish", args)
	}
	return o.String(), e.String(), code
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // a prefix of stdout; a part of the one stderr line
	}{
		{[]string{"-h"}, 0, "udpclient: send calculations to discal.\n", ""},
		{[]string{"-help"}, 0, "udpclient: send calculations to discal.\n", ""},
		{[]string{"-version"}, 0, "udpclient discal ", ""},
		{[]string{"-frobnicate", "1+1"}, 64, "", "udpclient: flag provided but not defined: -frobnicate (see -h)"},
		{[]string{"-timeout", "100", "1+1"}, 64, "", `invalid value "100" for flag -timeout: add a unit, e.g. 100ms (see -h)`},
		{[]string{"-timeout", "soon", "1+1"}, 64, "", "not a duration, e.g. 1s or 250ms"},
		{[]string{"-timeout", "0s", "1+1"}, 64, "", "-timeout must be positive"},
		{[]string{"-retries", "-1", "1+1"}, 64, "", "-retries not negative"},
		{[]string{"-retries", "x"}, 64, "", `invalid value "x" for flag -retries`},
		{[]string{"-proxy", "nohost:port:x", "1+1"}, 64, "", "udpclient: "},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runCmd(t, strings.NewReader(""), tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out, errOut)
			}
			if !strings.HasPrefix(out, tt.stdout) || (tt.stdout == "" && out != "") {
				t.Errorf("stdout %q, want %q first", out, tt.stdout)
			}
			if tt.stderr == "" && errOut != "" || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q, want %q", errOut, tt.stderr)
			}
			if strings.Count(errOut, "\n") > 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", strings.Count(errOut, "\n"), errOut)
			}
		})
	}
}

// TestOneLinePerInputLine: every input line gets exactly one output line,
// in order: a blank line or a comment an empty one.
func TestOneLinePerInputLine(t *testing.T) {
	addr := startServer(t, "s1")
	var in, want strings.Builder
	for i := range 300 {
		in.WriteString("# a comment\n")
		in.WriteString(strings.Repeat(" ", i%3))
		fmt.Fprintf(&in, "%d + 1\n\n", i)
		fmt.Fprintf(&want, "\n%d\n\n", i+1)
	}
	in.WriteString("1 / 0\nnonsense\n   \n")
	want.WriteString("error: division by zero\nerror: syntax error: \"nonsense\" is not a number\n\n")
	out, errOut, code := runCmd(t, strings.NewReader(in.String()), "-proxy", addr)
	if code != exitFailed || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want %d", code, errOut, exitFailed)
	}
	if out != want.String() {
		t.Fatalf("output differs:\n%q\nwant:\n%q", out, want.String())
	}
}

// TestHostileText: what a hostile server writes never reaches the
// terminal: codec refuses a reply whose server name or message has control
// characters (codec.ErrBadText), so the client answers each such line with
// an error of its own, one line per input line, and no escape sequence or
// extra line gets through, in text or -json.
func TestHostileText(t *testing.T) {
	addr := startHostile(t, func(req codec.Request) codec.Reply {
		if req.Op == codec.OpDiv {
			return codec.Reply{Err: &codec.Error{Code: codec.CodeDivByZero, Message: "division\nby zero\x1b[2J"}, Server: "s\r1"}
		}
		return codec.Reply{Result: req.A, Server: "evil\x1b]0;owned\x07\nline\u202e\xff"}
	})
	in := "1 + 1\n\n2 / 0\n3 + 3\n"
	for _, args := range [][]string{{"-v"}, {"-json"}} {
		args = append(args, "-timeout", "20ms", "-retries", "0", "-proxy", addr)
		out, _, code := runCmd(t, strings.NewReader(in), args...)
		if code == 0 || strings.Count(out, "\n") != strings.Count(in, "\n") {
			t.Fatalf("%v: exit %d, %d lines in, output:\n%s", args, code, strings.Count(in, "\n"), out)
		}
		if strings.ContainsAny(out, "\x1b\r\x07\u202e") || strings.Contains(out, "evil") || strings.Contains(out, "owned") {
			t.Fatalf("%v: hostile text got through:\n%q", args, out)
		}
		if args[0] == "-v" && (!strings.HasPrefix(out, "error: no answer from ") || strings.Split(out, "\n")[1] != "") {
			t.Fatalf("%v: want an error line per expression and the blank line kept:\n%s", args, out)
		}
	}
}

func TestJSON(t *testing.T) {
	addr := startServer(t, "s1")
	out, errOut, code := runCmd(t, strings.NewReader("2 + 3\n\n1 / 0\n"), "-json", "-proxy", addr)
	if code != exitFailed || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
	}
	var recs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		recs = append(recs, m)
	}
	ok := recs[0]
	if ok["expr"] != "2 + 3" || ok["result"] != 5.0 || ok["server"] != "s1" || ok["proxy"] != addr ||
		len(ok["id"].(string)) != 16 || ok["tries"].(float64) < 1 || ok["latency_ms"] == nil || ok["error"] != nil {
		t.Errorf("answer: %s", lines[0])
	}
	if lines[1] != `{"expr":""}` {
		t.Errorf("blank line: %s, want {\"expr\":\"\"}", lines[1])
	}
	e, _ := recs[2]["error"].(map[string]any)
	if e["code"] != float64(codec.CodeDivByZero) || e["message"] != "division by zero" || recs[2]["server"] != "s1" || recs[2]["result"] != nil {
		t.Errorf("error: %s", lines[2])
	}

	// One expression, and no answer: the object goes to stdout too.
	dead := refusing(t)
	out, errOut, code = runCmd(t, nil, "-json", "-proxy", dead, "1 + 1")
	var m struct {
		Expr  string
		Error struct {
			Code    int
			Message string
		}
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || code != exitNoAnswer || errOut != "" ||
		m.Error.Code != 0 || m.Error.Message != "no answer from "+dead+": connection refused" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestNothingListens: with no proxy there, the client fails at once and
// names the address; with another proxy given, it uses that one.
func TestNothingListens(t *testing.T) {
	dead, dead2 := refusing(t), refusing(t)
	start := time.Now()
	out, errOut, code := runCmd(t, nil, "-proxy", dead+","+dead2, "1 + 1")
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v, want under a second", d)
	}
	if want := "error: no answer from " + dead + ", " + dead2 + ": connection refused\n"; code != exitNoAnswer || out != "" || errOut != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2, %q", code, out, errOut, want)
	}
	live := startServer(t, "s1")
	out, errOut, code = runCmd(t, nil, "-v", "-proxy", dead+","+live, "6 * 7")
	if code != exitOK || out != "42 (server s1)\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestStopsOnCancel: Ctrl-C while reading a pipe that sends nothing more
// ends the command at once, with 130.
func TestStopsOnCancel(t *testing.T) {
	addr := startServer(t, "s1")
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-proxy", addr}, r, out, io.Discard) }()
	if _, err := w.Write([]byte("20 + 22\n")); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the first answer", func() bool { return out.String() == "42\n" })
	cancel()
	select {
	case code := <-done:
		if code != exitSignal {
			t.Fatalf("exit %d after Ctrl-C, want %d", code, exitSignal)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5s after Ctrl-C")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
