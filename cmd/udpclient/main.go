// Command udpclient sends calculations to discal and prints the answers.
//
//	udpclient [-proxy 127.0.0.1:7000[,ANOTHER:7000]] [-timeout 1s] [-retries 3] [-v] [-json] [EXPR]
//	udpclient -status-addr HOST:PORT [-control-key FILE] drain|undrain|burn F
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/udpclient"
)

// The command's exit statuses. Scripts rely on them.
const (
	exitOK       = 0   // every expression was answered with a result
	exitFailed   = 1   // a calculation failed: "error: ..." was printed
	exitNoAnswer = 2   // no answer came after the retries
	exitUsage    = 64  // the command line was wrong (EX_USAGE)
	exitSignal   = 130 // interrupted (Ctrl-C), as shells report SIGINT
)

const usage = `udpclient: send calculations to discal.

Usage:
  udpclient [flags] EXPR
  udpclient [flags] < FILE        one expression a line, one answer a line
  udpclient [flags]               on a terminal: a prompt; help, quit or Ctrl-D

EXPR is "A OP B" with OP one of + - * /, or "add|sub|mul|div A B".
Quote * from the shell, and put -- before an expression that starts with
a minus sign. From a file or pipe, every input line gets exactly one output
line: a blank line or a '#' comment gets an empty one.

  udpclient -status-addr HOST:PORT [-control-key FILE] drain|undrain|burn F

Exit status: 0 answered, 1 the calculation failed ("error: ..." on
standard error), 2 no answer after the retries, 64 usage error, 130
interrupted. With -status-addr: 0 the server confirmed the command, 1 it
answered with an error, 2 nothing confirmed it (a server with
-control-key answers nothing it refuses, or it was not reached).

Examples:
  udpclient 2 + 3                 # 5
  udpclient 7 / 2                 # 3.5
  udpclient '6 * 7'               # 42
  udpclient -v add 2 3            # 5 (server s2)
  udpclient -- -3 - 4             # -7
  udpclient -json 2 + 3           # {"expr":"2 + 3","result":5,"server":"s1",...}
  printf '1+1\n2*3\n' | udpclient
  udpclient -proxy 10.0.0.5:7000,10.0.0.6:7000 2 + 3   # two proxies: the second if the first is silent
  udpclient -status-addr 10.0.0.7:7101 -control-key /etc/discal/control.key drain   # lame duck, sealed
  udpclient -status-addr 127.0.0.1:7101 burn 0.5   # loopback needs no key

` + cli.EnvHelp + `
Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line's choices.
type options struct {
	cfg     udpclient.Config
	proxy   string
	verbose bool
	json    bool
	expr    string   // the expression on the command line, "" to read stdin
	control *control // -status-addr: a command for a server, not a calculation
}

// parse reads the command line. -h and -version print to stdout and return
// done; a usage error prints one line to stderr and returns exitUsage.
func parse(args []string, stdout, stderr io.Writer) (o options, code int, done bool) {
	fs := flag.NewFlagSet("udpclient", flag.ContinueOnError)
	fs.StringVar(&o.proxy, "proxy", "127.0.0.1:7000", "proxy `addresses`, comma-separated: a request no proxy answers in time goes to the next, and so do the requests after it")
	fs.DurationVar(&o.cfg.Timeout, "timeout", time.Second, "`duration` to wait for the first answer, with a unit (1s, 250ms); each retry waits twice as long, up to 4×")
	fs.IntVar(&o.cfg.Retries, "retries", udpclient.DefaultRetries, "times to send a request again when no answer comes")
	fs.BoolVar(&o.verbose, "v", false, "also print which server answered")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per answer: expr, result or error {code, message}, server, proxy, id, tries, latency_ms")
	statusAddr := fs.String("status-addr", "", "send the command drain, undrain or burn F to the server whose status port is at `host:port`, instead of a calculation; exit 0 when it confirmed")
	keyFile := fs.String("control-key", "", "seal the -status-addr command with the shared key in `file`, the server's -control-key (needed from any host but the server's own)")
	common := cli.Register(fs, "udpclient")
	if code, done := common.ParseCommandLine(fs, args, usage, stdout, stderr); done {
		return o, code, true
	}
	if o.cfg.Timeout <= 0 || o.cfg.Retries < 0 {
		return o, cli.UsageError(stderr, "udpclient", errors.New("-timeout must be positive and -retries not negative")), true
	}
	if o.cfg.Retries == 0 {
		o.cfg.Retries = udpclient.NoRetries // -retries 0: none, not the library's default
	}
	if *statusAddr != "" || *keyFile != "" {
		c, err := newControl(*statusAddr, *keyFile, fs.Args())
		if err != nil {
			fmt.Fprintf(stderr, "udpclient: %v\n", err)
			fmt.Fprintln(stderr, `usage: udpclient -status-addr HOST:PORT [-control-key FILE] drain|undrain|burn F`)
			return o, exitUsage, true
		}
		o.control = c
		return o, exitOK, false
	}
	if fs.NArg() > 0 {
		o.expr = strings.Join(fs.Args(), " ")
		if _, err := codec.ParseExpr(o.expr); err != nil {
			fmt.Fprintf(stderr, "udpclient: %v\n", err)
			fmt.Fprintln(stderr, `usage: udpclient [flags] EXPR, e.g. udpclient 2 + 3 (udpclient -h for more)`)
			return o, exitUsage, true
		}
	}
	return o, exitOK, false
}

// run is the whole command; ctx ends with Ctrl-C.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, code, done := parse(args, stdout, stderr)
	if done {
		return code
	}
	if o.control != nil {
		return runControl(ctx, o.control, o.cfg.Timeout, max(o.cfg.Retries, 0), stdout, stderr)
	}
	c, err := udpclient.Dial(o.proxy, o.cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	defer c.Close()
	p := printer{verbose: o.verbose, json: o.json}

	if o.expr == "" {
		var status int
		if isTerminal(stdin) {
			status, err = interact(ctx, c, stdin, stdout, stderr, p)
		} else {
			status, err = evalLines(ctx, c, stdin, stdout, 64, p)
		}
		if ctx.Err() != nil {
			return exitSignal
		}
		if err != nil {
			fmt.Fprintln(stderr, "udpclient:", err)
		}
		return status
	}
	r := eval(ctx, c, o.expr)
	if ctx.Err() != nil {
		return exitSignal
	}
	if r.status == exitOK || o.json {
		fmt.Fprintln(stdout, p.format(r))
	} else {
		fmt.Fprintln(stderr, p.format(r))
	}
	return r.status
}
