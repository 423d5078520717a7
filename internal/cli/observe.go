package cli

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strings"
)

// Exit statuses the binaries share.
const (
	ExitOK      = 0
	ExitFailure = 1  // the daemon could not start or stopped on an error
	ExitUsage   = 64 // a bad flag, argument or address (sysexits.h EX_USAGE)
)

// StartProfile starts the CPU profile -cpuprofile asks for (none when file
// is empty). stop writes it out: call it on every way out of main, which is
// why the binaries' mains are run() int, with os.Exit outside.
func StartProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// HTTPAddr adds -http-addr to fs, and -metrics-addr, its older name, which
// sets the same value. Each also comes from its DISCAL_ variable; either on
// the command line wins over both variables. The listener serves /metrics,
// /healthz, /readyz and / (see HTTP).
func (c *Common) HTTPAddr(fs *flag.FlagSet) *string {
	addr := new(string)
	fs.StringVar(addr, "http-addr", "", "serve /metrics, /healthz, /readyz and / over HTTP at `address` (default: off)")
	fs.Var((*alias)(addr), "metrics-addr", "the former name of -http-addr")
	c.aliases = append(c.aliases, [2]string{"http-addr", "metrics-addr"})
	return addr
}

// alias is a string flag that writes another flag's variable.
type alias string

func (a *alias) String() string     { return string(*a) }
func (a *alias) Set(v string) error { *a = alias(v); return nil }

// CheckAddr reports whether addr is a host:port a daemon can listen on or
// send to, without opening anything, so that a typo is a usage error
// (exit 64) rather than a failure at start. network is "udp" or "tcp". An
// empty addr is allowed when optional.
func CheckAddr(flagName, network, addr string, optional bool) error {
	if addr == "" {
		if optional {
			return nil
		}
		return fmt.Errorf("-%s: an address is needed", flagName)
	}
	var err error
	switch network {
	case "tcp":
		_, err = net.ResolveTCPAddr(network, addr)
	default:
		_, err = net.ResolveUDPAddr(network, addr)
	}
	if err != nil {
		return fmt.Errorf("-%s %q: want host:port: %w", flagName, addr, err)
	}
	return nil
}

// HTTPHosts adds -http-host to fs, repeatable: the names besides IP
// addresses and localhost that the dashboard answers to (a Host header
// with any other name is refused, as DNS rebinding sends). Give its name
// to Parse among the repeatable flags, so that DISCAL_HTTP_HOST may hold
// several separated by spaces.
func (c *Common) HTTPHosts(fs *flag.FlagSet) *[]string {
	hosts := new([]string)
	fs.Func("http-host", "a `name` the dashboard answers to beside IP addresses and localhost, as a browser sends it in Host (a DNS name that reaches this host); repeatable", func(v string) error {
		if err := checkHostName(v); err != nil {
			return err
		}
		*hosts = append(*hosts, v)
		return nil
	})
	return hosts
}

// checkHostName accepts a DNS name as a browser would send it in Host,
// without a scheme, a path or a port: letters, digits, "-" and ".".
func checkHostName(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return fmt.Errorf("%q: want a DNS name such as proxy.example.com", name)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("%q: want a DNS name such as proxy.example.com (no scheme, port or path)", name)
		}
	}
	return nil
}
