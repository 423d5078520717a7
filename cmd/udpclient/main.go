// Command udpclient sends calculations to discal and prints the answers.
//
//	udpclient [-proxy 127.0.0.1:7000[,ANOTHER:7000]] [-timeout 1s] [-retries 3] [-v] [EXPR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/udpclient"
)

const usage = `udpclient: send calculations to discal.

Usage:
  udpclient [flags] EXPR
  udpclient [flags] < FILE        one expression a line, one answer a line

EXPR is "A OP B" with OP one of + - * /, or "add|sub|mul|div A B".
Quote * from the shell, and put -- before an expression that starts with
a minus sign.

Exit status: 0 answered, 1 the calculation failed ("error: ..." on
standard error), 2 no answer after the retries, 64 usage error, 130
interrupted.

Examples:
  udpclient 2 + 3                 # 5
  udpclient 7 / 2                 # 3.5
  udpclient '6 * 7'               # 42
  udpclient -v add 2 3            # 5 (server s2)
  udpclient -- -3 - 4             # -7
  printf '1+1\n2*3\n' | udpclient
  udpclient -proxy 10.0.0.5:7000,10.0.0.6:7000 2 + 3   # two proxies: the second if the first is silent

` + cli.EnvHelp + `
Flags:
`

func main() {
	os.Exit(run())
}

func run() int {
	var cfg udpclient.Config
	var proxy string
	var verbose bool
	flag.StringVar(&proxy, "proxy", "127.0.0.1:7000", "proxy `addresses`, comma-separated: a request no proxy answers in time goes to the next, and so do the requests after it")
	flag.DurationVar(&cfg.Timeout, "timeout", time.Second, "wait for the first answer; each retry waits twice as long, up to 4×")
	flag.IntVar(&cfg.Retries, "retries", 3, "times to send a request again when no answer comes")
	flag.BoolVar(&verbose, "v", false, "also print which server answered")
	common := cli.Register(flag.CommandLine, "udpclient")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.CommandLine.Init("udpclient", flag.ContinueOnError)
	if err := common.Parse(flag.CommandLine, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, cli.ErrVersion) {
			return udpclient.ExitOK
		}
		fmt.Fprintln(os.Stderr, "udpclient:", err)
		return udpclient.ExitUsage
	}
	if cfg.Timeout <= 0 || cfg.Retries < 0 {
		fmt.Fprintln(os.Stderr, "udpclient: -timeout must be positive and -retries not negative")
		return udpclient.ExitUsage
	}
	cfg.NoRetries = cfg.Retries == 0

	var expr string
	if flag.NArg() > 0 {
		expr = strings.Join(flag.Args(), " ")
		if _, err := codec.ParseExpr(expr); err != nil {
			fmt.Fprintf(os.Stderr, "udpclient: %v\n", err)
			fmt.Fprintln(os.Stderr, `usage: udpclient [flags] EXPR, e.g. udpclient 2 + 3 (udpclient -h for more)`)
			return udpclient.ExitUsage
		}
	}
	c, err := udpclient.Dial(proxy, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return udpclient.ExitUsage
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if expr == "" {
		status, err := c.EvalLines(ctx, os.Stdin, os.Stdout, 64, verbose)
		if ctx.Err() != nil {
			return udpclient.ExitSignal
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "udpclient:", err)
		}
		return status
	}
	r := c.Eval(ctx, expr)
	if ctx.Err() != nil {
		return udpclient.ExitSignal
	}
	if r.Status == udpclient.ExitOK {
		fmt.Println(udpclient.FormatResult(r, verbose))
	} else {
		fmt.Fprintln(os.Stderr, udpclient.FormatResult(r, verbose))
	}
	return r.Status
}
