package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/discal/discal/udpclient"
)

const help = `Type an expression and Enter: 2 + 3, 7 / 2, -3 * 4, or add|sub|mul|div A B.
Operators: + - * /. Integers stay exact; 7 / 2 is 3.5.
The arrows edit the line and recall the ones before.
help shows this; quit, exit or Ctrl-D ends.
`

// lineSource is where a session's lines come from: a line editor when the
// session has a terminal to itself (tty_linux.go), or the terminal's own
// line discipline after a printed prompt.
type lineSource interface {
	// readLine prompts and returns the next line; io.EOF at the end
	// (Ctrl-D), ctx's error when ctx ends first.
	readLine(ctx context.Context) (string, error)
	close()
}

// interact is the session on a terminal: a prompt, one expression at a
// time. The prompt, banner and help go to stderr, so stdout holds only the
// answers even when it is redirected. It returns the worst status, as for
// lines from a pipe.
func interact(ctx context.Context, c *udpclient.Client, in io.Reader, out, msg io.Writer, p printer) (int, error) {
	src := newLineSource(in, msg)
	defer src.close()
	fmt.Fprintf(msg, "udpclient: asking %s; help for help, quit or Ctrl-D to end\n", c.Proxy())
	status := exitOK
	for {
		line, err := src.readLine(ctx)
		switch {
		case ctx.Err() != nil:
			fmt.Fprintln(msg)
			return status, ctx.Err()
		case errors.Is(err, io.EOF):
			fmt.Fprintln(msg) // Ctrl-D leaves the cursor after the prompt
			return status, nil
		case err != nil:
			return status, err
		}
		switch line = strings.TrimSpace(line); line {
		case "":
			continue
		case "help", "?":
			fmt.Fprint(msg, help)
			continue
		case "quit", "exit":
			return status, nil
		}
		r := eval(ctx, c, line)
		if ctx.Err() != nil {
			return status, ctx.Err()
		}
		status = max(status, r.status)
		fmt.Fprintln(out, p.format(r))
	}
}

// promptLines prints a prompt and reads a line as the terminal's line
// discipline hands it over: the session when its messages do not go to the
// terminal, where a line editor would draw. A goroutine reads, so that
// Ctrl-C ends the wait for a line that never comes.
type promptLines struct {
	msg   io.Writer
	lines chan string
	err   chan error // the read's error once lines is closed
	quit  chan struct{}
}

func newPromptLines(in io.Reader, msg io.Writer) *promptLines {
	s := &promptLines{msg: msg, lines: make(chan string), err: make(chan error, 1), quit: make(chan struct{})}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			case <-s.quit:
				return
			}
		}
		s.err <- sc.Err()
	}()
	return s
}

func (s *promptLines) readLine(ctx context.Context) (string, error) {
	fmt.Fprint(s.msg, "> ")
	select {
	case line, more := <-s.lines:
		if !more {
			if err := <-s.err; err != nil {
				return "", err
			}
			return "", io.EOF
		}
		return line, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (s *promptLines) close() { close(s.quit) }

// history is the line editor's: the last 100 lines, without blank ones or
// a repeat of the line before, so that the up arrow recalls only what is
// worth typing again.
type history struct{ lines []string }

const historySize = 100

func (h *history) Add(line string) {
	line = strings.TrimSpace(line)
	if line == "" || (len(h.lines) > 0 && h.lines[len(h.lines)-1] == line) {
		return
	}
	if len(h.lines) == historySize {
		h.lines = append(h.lines[:0], h.lines[1:]...)
	}
	h.lines = append(h.lines, line)
}

func (h *history) Len() int { return len(h.lines) }

// At returns the idx-th line back: 0 is the last one.
func (h *history) At(idx int) string { return h.lines[len(h.lines)-1-idx] }
