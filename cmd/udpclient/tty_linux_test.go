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

	"github.com/discal/discal/internal/eventually"
	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal: the side a person types into, the
// terminal the command reads as its standard input, and what the terminal
// shows (its echo and whatever the command writes to it).
func openPTY(t *testing.T) (typist, term *os.File, screen *syncBuffer) {
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
	// Non-blocking, so that Go's poller reads it and Close ends a Read in
	// progress: a session ended by its context leaves the line editor's
	// Read waiting, and the screen's reader ends only once no one holds
	// the terminal open.
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Drain what the terminal shows, so that it never fills up and blocks.
	screen = &syncBuffer{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(screen, m)
	}()
	t.Cleanup(func() {
		s.Close()
		m.Close()
		<-copied
	})
	return m, s, screen
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
			typist, term, _ := openPTY(t)
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

// termios returns the terminal's local modes: ICANON and ECHO when it is
// as a shell leaves it, neither in the line editor's raw mode.
func termios(t *testing.T, f *os.File) uint32 {
	t.Helper()
	var lflag uint32
	if err := withFd(f, func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err == nil {
			lflag = tio.Lflag
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return lflag
}

// TestLineEditing: with standard input and standard error on a terminal,
// the session edits lines: the up arrow recalls the last expression (not
// the blank line after it), and Enter asks it again. The terminal is raw
// while a line is typed, but keeps ISIG so that Ctrl-C is still SIGINT,
// and is back as it was when the session ends, however it ends.
func TestLineEditing(t *testing.T) {
	addr := startServer(t, "s1")
	for _, tt := range []struct {
		name   string
		end    string // typed at the third prompt; "" cancels the context, as SIGINT does
		code   int
		stdout string
	}{
		{"ctrl-d", "\x04", exitOK, "5\n5\n"},
		{"quit", "quit\r", exitOK, "5\n5\n"},
		{"edited", "\x1b[A\x1b[D1\x1b[C\x7f7\r\x04", exitOK, "5\n5\n19\n"}, // up, left, 1, right, backspace, 7: "2 + 17"
		{"ctrl-c", "", exitSignal, "5\n5\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			typist, term, screen := openPTY(t)
			cooked := termios(t, term)
			if cooked&unix.ICANON == 0 || cooked&unix.ECHO == 0 {
				t.Fatalf("a new terminal is not cooked: lflag %#x", cooked)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &syncBuffer{}
			done := make(chan int, 1)
			go func() { done <- run(ctx, []string{"-proxy", addr}, term, out, term) }()
			typeAt := func(prompt int, keys string) {
				t.Helper()
				eventually.True(t, 10*time.Second, fmt.Sprintf("prompt %d", prompt), func() bool {
					return strings.Count(screen.String(), "> ") >= prompt
				})
				if _, err := typist.WriteString(keys); err != nil {
					t.Fatal(err)
				}
			}
			typeAt(1, "2 + 3\r")
			typeAt(2, "\r")
			typeAt(3, "\x1b[A\r") // the up arrow, Enter
			if tt.end == "" {
				eventually.True(t, 10*time.Second, "prompt 4", func() bool { return strings.Count(screen.String(), "> ") >= 4 })
				if raw := termios(t, term); raw&(unix.ICANON|unix.ECHO) != 0 || raw&unix.ISIG == 0 {
					t.Errorf("at the prompt: lflag %#x, want raw but for ISIG", raw)
				}
				cancel()
			} else {
				typeAt(4, tt.end)
			}
			select {
			case code := <-done:
				if code != tt.code {
					t.Errorf("exit %d, want %d", code, tt.code)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("session did not end; stdout %q, screen %q", out, screen)
			}
			if out.String() != tt.stdout {
				t.Errorf("stdout %q, want %q; screen %q", out, tt.stdout, screen)
			}
			if strings.Contains(screen.String(), "^[[A") {
				t.Errorf("the up arrow was echoed: %q", screen)
			}
			if got := termios(t, term); got != cooked {
				t.Errorf("the terminal was left with lflag %#x, want %#x", got, cooked)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	var h history
	for _, l := range []string{"1 + 1", "", "  ", "1 + 1", "2 + 2", " 1 + 1 "} {
		h.Add(l)
	}
	if h.Len() != 3 || h.At(0) != "1 + 1" || h.At(1) != "2 + 2" || h.At(2) != "1 + 1" {
		t.Fatalf("history %q", h.lines)
	}
	for i := range 2 * historySize {
		h.Add(fmt.Sprint(i))
	}
	if h.Len() != historySize || h.At(0) != fmt.Sprint(2*historySize-1) || h.At(historySize-1) != fmt.Sprint(historySize) {
		t.Fatalf("history of %d: newest %q, oldest %q", h.Len(), h.At(0), h.At(h.Len()-1))
	}
}
