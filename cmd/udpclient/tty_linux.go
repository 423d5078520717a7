package main

import (
	"context"
	"io"
	"os"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// isTerminal says whether r is a terminal: the session is then a person's,
// with a prompt. A character device is not enough (/dev/null is one).
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	return withFd(f, func(fd int) error {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	}) == nil
}

// withFd runs fn on f's descriptor. f.Fd would do, but it puts a
// non-blocking descriptor in blocking mode for good, after which Close no
// longer ends a Read in progress (the line editor's, when Ctrl-C ends the
// session).
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// newLineSource returns a line editor (golang.org/x/term's Terminal: the
// arrows, history, Ctrl-A/E/K/U/W) when both in and msg are terminals, the
// editor drawing the prompt and the line on msg. With msg elsewhere, where
// the person would not see what they type, it is the terminal's own line
// discipline, as before.
func newLineSource(in io.Reader, msg io.Writer) lineSource {
	if !isTerminal(in) || !isTerminal(msg) {
		return newPromptLines(in, msg)
	}
	f := in.(*os.File)
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{f, msg}, "> ")
	t.History = &history{}
	_ = withFd(msg.(*os.File), func(fd int) error {
		w, h, err := term.GetSize(fd)
		if err == nil && w > 0 && h > 0 {
			err = t.SetSize(w, h)
		}
		return err
	})
	return &editLines{tty: f, t: t}
}

// editLines reads lines through the line editor, with the terminal in raw
// mode while it waits for one and back as it was while the answer is
// computed and printed, so that answers on stdout print as ever.
type editLines struct {
	tty     *os.File
	t       *term.Terminal
	pending chan lineRead // a ReadLine still running, if ctx ended the last wait
}

type lineRead struct {
	line string
	err  error
}

func (e *editLines) readLine(ctx context.Context) (string, error) {
	var restore func()
	if err := withFd(e.tty, func(fd int) (err error) {
		restore, err = makeRaw(fd)
		return err
	}); err != nil {
		return "", err
	}
	defer restore()
	if e.pending == nil {
		e.pending = make(chan lineRead, 1)
		go func(ch chan<- lineRead) {
			line, err := e.t.ReadLine()
			ch <- lineRead{line, err}
		}(e.pending)
	}
	select {
	case r := <-e.pending:
		e.pending = nil
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (e *editLines) close() {}

// makeRaw is term.MakeRaw but for ISIG, which it keeps: Ctrl-C still sends
// SIGINT, which ends the session with exit 130 as while an answer is
// awaited (term.Terminal would read the byte and report it as io.EOF, a
// Ctrl-D), and Ctrl-Z still suspends, as at any shell's prompt. restore puts
// the terminal back as it was, by the descriptor number: the session ends
// before the terminal is closed.
func makeRaw(fd int) (restore func(), err error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	old := *t
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, &old) }, nil
}
