// Package cli is what the four binaries share around their flags: values
// from the environment, -version, and -log-format. It holds no behaviour of
// discal's own; the binaries stay thin.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is set at build time with
// -ldflags "-X github.com/discal/discal/internal/cli.Version=v1.2.3";
// otherwise it comes from the module's build information.
var Version = ""

// version returns the version line for -version.
func version(name string) string {
	v := Version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += " " + s.Value[:12]
				}
			}
		}
	}
	return fmt.Sprintf("%s discal %s %s %s/%s", name, v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// EnvName is the environment variable that sets a flag: DISCAL_ and the
// flag's name in capitals, dashes as underscores (-status-addr is
// DISCAL_STATUS_ADDR).
func EnvName(flagName string) string {
	return "DISCAL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Common adds -version and -log-format to fs, and returns the log format's
// variable.
type Common struct {
	name      string
	version   bool
	logFormat string
	aliases   [][2]string // flags that set one value: given one, both are
}

// Register adds the common flags to fs.
func Register(fs *flag.FlagSet, name string) *Common {
	c := &Common{name: name}
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	fs.StringVar(&c.logFormat, "log-format", "text", "log `format`: text or json")
	return c
}

// ErrVersion is returned by Parse after printing the version.
var ErrVersion = errors.New("version printed")

// Parse parses args into fs, then fills every flag not given on the command
// line from its environment variable, if set (the command line wins). A
// flag that may be repeated takes a variable holding several values
// separated by spaces. It handles -version and sets up the default logger
// for -log-format, writing to logOut.
func (c *Common) Parse(fs *flag.FlagSet, args []string, logOut io.Writer, repeatable ...string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
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
	if err != nil {
		return err
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

// EnvHelp is a paragraph for a binary's -h about the environment.
const EnvHelp = `Every flag can also come from the environment: DISCAL_ and its name in
capitals, dashes as underscores (-status-addr is DISCAL_STATUS_ADDR); the
command line wins.
`
