package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/discal/discal/udpclient"
)

const help = `Type an expression and Enter: 2 + 3, 7 / 2, -3 * 4, or add|sub|mul|div A B.
Operators: + - * /. Integers stay exact; 7 / 2 is 3.5.
help shows this; quit, exit or Ctrl-D ends.
`

// interact is the session on a terminal: a prompt, one expression at a
// time. The prompt, banner and help go to stderr, so stdout holds only the
// answers even when it is redirected. It returns the worst status, as for
// lines from a pipe.
func interact(ctx context.Context, c *udpclient.Client, in io.Reader, out, msg io.Writer, p printer) (int, error) {
	lines := make(chan string)
	readErr := make(chan error, 1)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-quit:
				return
			}
		}
		readErr <- sc.Err()
	}()
	fmt.Fprintf(msg, "udpclient: asking %s; help for help, quit or Ctrl-D to end\n", c.Proxy())
	status := exitOK
	for {
		fmt.Fprint(msg, "> ")
		var line string
		var more bool
		select {
		case line, more = <-lines:
		case <-ctx.Done():
			fmt.Fprintln(msg)
			return status, ctx.Err()
		}
		if !more {
			fmt.Fprintln(msg) // Ctrl-D leaves the cursor after the prompt
			return status, <-readErr
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
