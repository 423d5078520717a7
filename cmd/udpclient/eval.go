package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/udpclient"
)

// result is the outcome of one input line.
type result struct {
	expr   string
	skip   bool // a blank line or a comment: nothing was asked
	ans    udpclient.Answer
	err    error
	status int // exitOK, exitFailed or exitNoAnswer
}

// eval parses one expression in the text form and computes it.
func eval(ctx context.Context, c *udpclient.Client, expr string) result {
	r := result{expr: expr}
	req, err := codec.ParseExpr(expr)
	if err != nil {
		r.err, r.status = err, exitFailed
		return r
	}
	r.ans, r.err = c.Exchange(ctx, req)
	switch {
	case r.err == nil:
		r.status = exitOK
	case errors.Is(r.err, udpclient.ErrNoAnswer), errors.Is(r.err, udpclient.ErrClosed), ctx.Err() != nil:
		r.status = exitNoAnswer
	default:
		r.status = exitFailed
	}
	return r
}

// skipped says whether a line asks nothing: blank, or a '#' comment.
func skipped(line string) bool { return line == "" || strings.HasPrefix(line, "#") }

// evalLines reads one expression a line from in and writes exactly one line
// to out for each line read, in the order of the input, with up to window
// expressions in flight at once. A blank line or a '#' comment prints an
// empty line (with -json, an object with only "expr"), so that output line
// n always belongs to input line n. It returns the worst status of all the
// lines.
func evalLines(ctx context.Context, c *udpclient.Client, in io.Reader, out io.Writer, window int, p printer) (int, error) {
	type slot struct{ ch chan result }
	queue := make(chan slot, max(window, 1))
	readErr := make(chan error, 1)
	go func() {
		defer close(queue)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			s := slot{ch: make(chan result, 1)}
			select {
			case queue <- s: // blocks while window lines are unanswered
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			if skipped(line) {
				s.ch <- result{expr: line, skip: true}
				continue
			}
			go func() { s.ch <- eval(ctx, c, line) }()
		}
		readErr <- sc.Err()
	}()
	w := bufio.NewWriter(out)
	status := exitOK
	for {
		// Wait for the next line's answer, or stop at once on ctx: the
		// reader may be blocked on a terminal that sends nothing more.
		var r result
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
		status = max(status, r.status)
		_, _ = fmt.Fprintln(w, p.format(r))
		if len(queue) == 0 {
			_ = w.Flush() // nothing else ready: let the reader see this line now
		}
	}
}
