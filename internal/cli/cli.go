// Package cli is what the five binaries share around their flags: one way
// to read a command line (-h and -version on standard output, a bad flag as
// one line and exit 64, durations that ask for a unit), values from the
// environment, and -log-format. It holds no behaviour of discal's own; the
// binaries stay thin.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"
)

// Version is set at build time with
// -ldflags "-X github.com/discal/discal/internal/cli.Version=v1.2.3";
// otherwise it comes from the module's build information.
var Version = ""

// version returns the version line for -version.
func version(name string) string {
	b := Build()
	commit := b.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	return fmt.Sprintf("%s discal %s %s %s %s/%s", name, b.Version, commit, b.Go, runtime.GOOS, runtime.GOARCH)
}

// EnvName is the environment variable that sets a flag: DISCAL_ and the
// flag's name in capitals, dashes as underscores (-status-addr is
// DISCAL_STATUS_ADDR).
func EnvName(flagName string) string {
	return "DISCAL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Common is what a binary's flag set shares with the others: -version,
// -log-format and values from the environment.
type Common struct {
	name      string
	version   bool
	logFormat string
	env       bool        // flags not given come from DISCAL_ variables
	logs      bool        // -log-format was registered
	aliases   [][2]string // flags that set one value: given one, both are
}

// Register adds the common flags to fs: -version and -log-format; Parse
// fills flags from the environment.
func Register(fs *flag.FlagSet, name string) *Common {
	c := &Common{name: name, env: true, logs: true}
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	fs.StringVar(&c.logFormat, "log-format", "text", "log `format`: text or json")
	return c
}

// RegisterVersion adds -version alone to fs, and Parse reads no
// environment: for bench, whose measurements a DISCAL_ variable left over
// for a daemon must not quietly change.
func RegisterVersion(fs *flag.FlagSet, name string) *Common {
	c := &Common{name: name}
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	return c
}

// ErrVersion is returned by Parse after printing the version.
var ErrVersion = errors.New("version printed")

// Parse parses args into fs, then (for a Common from Register) fills every
// flag not given on the command line from its environment variable, if set
// (the command line wins). A flag that may be repeated takes a variable
// holding several values separated by spaces. It handles -version and sets
// up the default logger for -log-format, writing to logOut. A binary calls
// ParseCommandLine, which calls Parse.
func (c *Common) Parse(fs *flag.FlagSet, args []string, logOut io.Writer, repeatable ...string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.env {
		if err := c.fromEnv(fs, repeatable); err != nil {
			return err
		}
	}
	if c.version {
		// What was asked for goes to standard output, as -h's text does;
		// a caller that gave the flag set a writer of its own gets it there.
		out := fs.Output()
		if out == os.Stderr {
			out = os.Stdout
		}
		fmt.Fprintln(out, version(c.name))
		return ErrVersion
	}
	if !c.logs {
		return nil
	}
	var h slog.Handler
	switch c.logFormat {
	case "text":
		h = slog.NewTextHandler(logOut, nil)
	case "json":
		h = slog.NewJSONHandler(logOut, nil)
	default:
		return fmt.Errorf("-log-format %q: want text or json", c.logFormat)
	}
	slog.SetDefault(slog.New(h))
	return nil
}

// fromEnv fills every flag not given on the command line from its
// environment variable, if set.
func (c *Common) fromEnv(fs *flag.FlagSet, repeatable []string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, a := range c.aliases {
		if given[a[0]] || given[a[1]] {
			given[a[0]], given[a[1]] = true, true
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(EnvName(f.Name))
		if !ok || given[f.Name] || err != nil {
			return
		}
		values := []string{v}
		for _, r := range repeatable {
			if r == f.Name {
				values = strings.Fields(v)
			}
		}
		for _, v := range values {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

// ParseCommandLine reads a binary's command line the way all of discal's
// binaries do, with Parse. -h (or -help) prints usage and then the flags on
// stdout, -version the version line on stdout; both end the run with
// ExitOK. A bad flag, value or environment variable is one line on stderr
// that names it and points to -h, and ExitUsage (see UsageError). A
// duration flag given a bare number asks for a unit. done says that the
// run ends here, with exit; otherwise the binary goes on, and logs go to
// stderr in the -log-format asked for.
func (c *Common) ParseCommandLine(fs *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer,
	repeatable ...string) (exit int, done bool) {
	// The flag package prints an error followed by the whole usage; a
	// person who mistyped one flag needs the one line, and the usage only
	// when asked for, on standard output where a pager can take it.
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage = func() {}
	restore := askForUnits(fs)
	err := c.Parse(fs, args, stderr, repeatable...)
	restore()
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return ExitOK, true
	case errors.Is(err, ErrVersion):
		_, _ = out.WriteTo(stdout) // the version line Parse printed
		return ExitOK, true
	case err != nil:
		return UsageError(stderr, c.name, err), true
	}
	return ExitOK, false
}

// UsageError prints err on one line of stderr, "NAME: ERR (see -h)", and
// returns ExitUsage: the form of every usage error of every binary. Lines
// of a joined error are joined with "; ", and a prefix "NAME: " is not
// said twice.
func UsageError(stderr io.Writer, name string, err error) int {
	msg := strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n", "; "), name+": ")
	fmt.Fprintf(stderr, "%s: %s (see -h)\n", name, msg)
	return ExitUsage
}

// askForUnits makes every duration flag of fs refuse a bare number by
// asking for a unit (durationError) until restore is called. restore puts
// the flag package's own values back, which -h names "duration" (it would
// call any other Value "value"); they hold what was parsed.
func askForUnits(fs *flag.FlagSet) (restore func()) {
	orig := map[*flag.Flag]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok {
			if _, ok := g.Get().(time.Duration); ok {
				orig[f] = f.Value
				f.Value = unitDuration{g}
			}
		}
	})
	return func() {
		for f, v := range orig {
			f.Value = v
		}
	}
}

// unitDuration is a duration flag whose error says what is wrong.
type unitDuration struct{ flag.Getter }

func (d unitDuration) Set(s string) error {
	if err := d.Getter.Set(s); err != nil {
		return durationError(s)
	}
	return nil
}

// durationError is the error for s, which is not a duration: "add a unit,
// e.g. 100ms" for a number without one ("-poll 100", the usual slip), "not
// a duration, e.g. 1s or 250ms" for anything else.
func durationError(s string) error {
	if _, err := time.ParseDuration(s + "ms"); err == nil {
		return errors.New("add a unit, e.g. " + s + "ms")
	}
	return errors.New("not a duration, e.g. 1s or 250ms")
}

// EnvHelp is a paragraph for a binary's -h about the environment.
const EnvHelp = `Every flag can also come from the environment: DISCAL_ and its name in
capitals, dashes as underscores (-status-addr is DISCAL_STATUS_ADDR); the
command line wins.
`
