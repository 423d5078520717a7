package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func TestEnvironmentFillsFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	addr := fs.String("status-addr", "default", "")
	proxy := fs.String("proxy", "default", "")
	var servers list
	fs.Var(&servers, "server", "")
	c := Register(fs, "x")
	t.Setenv("DISCAL_STATUS_ADDR", "from-env")
	t.Setenv("DISCAL_PROXY", "from-env")
	t.Setenv("DISCAL_SERVER", "a,b c,d")
	var logs bytes.Buffer
	if err := c.Parse(fs, []string{"-proxy", "from-flag", "-log-format", "json"}, &logs, "server"); err != nil {
		t.Fatal(err)
	}
	if *addr != "from-env" || *proxy != "from-flag" {
		t.Fatalf("status-addr %q, proxy %q", *addr, *proxy)
	}
	if len(servers) != 2 || servers[0] != "a,b" || servers[1] != "c,d" {
		t.Fatalf("servers %v", servers)
	}
	if EnvName("status-addr") != "DISCAL_STATUS_ADDR" {
		t.Fatal(EnvName("status-addr"))
	}
}

func TestVersionAndBadFormat(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	c := Register(fs, "udpx")
	if err := c.Parse(fs, []string{"-version"}, &out); !errors.Is(err, ErrVersion) || !strings.HasPrefix(out.String(), "udpx discal ") {
		t.Fatalf("-version: %v, %q", err, out.String())
	}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	c = Register(fs, "udpx")
	if err := c.Parse(fs, []string{"-log-format", "xml"}, &out); err == nil {
		t.Fatal("-log-format xml accepted")
	}
}
