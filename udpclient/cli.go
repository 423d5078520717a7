package udpclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/discal/discal/codec"
)

// The udpclient command's exit statuses. Scripts rely on them.
const (
	ExitOK       = 0   // every expression was answered with a result
	ExitFailed   = 1   // a calculation failed: "error: ..." was printed
	ExitNoAnswer = 2   // no answer came after the retries
	ExitUsage    = 64  // the command line was wrong (EX_USAGE)
	ExitSignal   = 130 // interrupted (Ctrl-C), as shells report SIGINT
)

// Result is the outcome of one expression, as the command prints it.
type Result struct {
	Reply  codec.Reply
	Err    error
	Status int // ExitOK, ExitFailed or ExitNoAnswer
}

// Line is what the command prints for the result: "42", or "error: ...".
func (r Result) Line() string {
	switch {
	case r.Err == nil:
		return r.Reply.Result.String()
	case errors.Is(r.Err, ErrNoAnswer):
		var e *codec.Error
		if errors.As(r.Err, &e) {
			return "error: " + e.Message
		}
		return "error: no answer"
	default:
		var e *codec.Error
		if errors.As(r.Err, &e) {
			return "error: " + e.Message
		}
		return "error: " + r.Err.Error()
	}
}

// Eval parses one expression in the text form and computes it.
func (c *Client) Eval(ctx context.Context, expr string) Result {
	req, err := codec.ParseExpr(expr)
	if err != nil {
		return Result{Err: err, Status: ExitFailed}
	}
	r, err := c.Do(ctx, req)
	switch {
	case err == nil:
		return Result{Reply: r, Status: ExitOK}
	case errors.Is(err, ErrNoAnswer), errors.Is(err, ErrClosed), ctx.Err() != nil:
		return Result{Reply: r, Err: err, Status: ExitNoAnswer}
	}
	return Result{Reply: r, Err: err, Status: ExitFailed}
}

// EvalLines reads one expression a line from in and writes one result a
// line to out, in the order of the input, with up to window expressions in
// flight at once. Blank lines and lines starting with '#' are skipped.
// verbose adds the name of the server that answered. It returns the worst
// status of all the lines.
func (c *Client) EvalLines(ctx context.Context, in io.Reader, out io.Writer, window int, verbose bool) (int, error) {
	if window < 1 {
		window = 1
	}
	type slot struct{ ch chan Result }
	queue := make(chan slot, window)
	readErr := make(chan error, 1)
	go func() {
		defer close(queue)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			s := slot{ch: make(chan Result, 1)}
			select {
			case queue <- s: // blocks while window lines are unanswered
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			go func() { s.ch <- c.Eval(ctx, line) }()
		}
		readErr <- sc.Err()
	}()
	w := bufio.NewWriter(out)
	status := ExitOK
	for {
		// Wait for the next line's answer, or stop at once on ctx: the
		// reader may be blocked on a terminal that sends nothing more.
		var r Result
		select {
		case s, more := <-queue:
			if !more {
				if err := w.Flush(); err != nil {
					return status, err
				}
				return status, <-readErr
			}
			select {
			case r = <-s.ch:
			case <-ctx.Done():
				_ = w.Flush()
				return status, ctx.Err()
			}
		case <-ctx.Done():
			_ = w.Flush()
			return status, ctx.Err()
		}
		status = max(status, r.Status)
		_, _ = fmt.Fprintln(w, FormatResult(r, verbose))
		if len(queue) == 0 {
			_ = w.Flush() // nothing else ready: let the reader see this line now
		}
	}
}

// FormatResult is the printed line for a result, with " (server s1)" when
// verbose and a server answered.
func FormatResult(r Result, verbose bool) string {
	line := r.Line()
	if verbose && r.Reply.Server != "" {
		line += " (server " + r.Reply.Server + ")"
	}
	return line
}
