package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal: the side a person types into and
// the terminal the command reads as its standard input.
func openPTY(t *testing.T) (typist, term *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The terminal echoes what is typed back to the typist; drain it so
	// that the echo never fills up and blocks.
	go func() { _, _ = io.Copy(io.Discard, m) }()
	t.Cleanup(func() {
		s.Close()
		m.Close()
	})
	return m, s
}

// TestTerminalSession: on a terminal, a prompt and help on stderr, answers
// on stdout, and quit or Ctrl-D ends the session.
func TestTerminalSession(t *testing.T) {
	addr := startServer(t, "s1")
	for _, tt := range []struct{ name, typed string }{
		{"quit", "2 + 3\n\nhelp\n1 / 0\nquit\n6 * 7\n"},
		{"ctrl-d", "2 + 3\n\nhelp\n1 / 0\n\x04"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			typist, term := openPTY(t)
			if !isTerminal(term) || isTerminal(strings.NewReader("")) {
				t.Fatal("isTerminal cannot tell a terminal")
			}
			out, msg := &syncBuffer{}, &syncBuffer{}
			done := make(chan int, 1)
			go func() { done <- run(context.Background(), []string{"-proxy", addr}, term, out, msg) }()
			if _, err := typist.WriteString(tt.typed); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code != exitFailed {
					t.Errorf("exit %d, want %d (1 / 0 failed)", code, exitFailed)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("session did not end; stdout %q, stderr %q", out, msg)
			}
			if out.String() != "5\nerror: division by zero\n" {
				t.Errorf("stdout %q: want the two answers only", out)
			}
			if m := msg.String(); strings.Count(m, "> ") < 4 || !strings.Contains(m, "quit, exit or Ctrl-D ends") ||
				!strings.Contains(m, "asking "+addr) {
				t.Errorf("stderr %q: want a banner, prompts and help", m)
			}
		})
	}
}

// TestNoPromptOnAPipe: /dev/null is a character device but no terminal;
// a pipe or a file gets no prompt.
func TestNoPromptOnAPipe(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Fatal("/dev/null taken for a terminal")
	}
	addr := startServer(t, "s1")
	out, errOut, code := runCmd(t, null, "-proxy", addr)
	if code != exitOK || out != "" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want nothing at all", code, out, errOut)
	}
}
