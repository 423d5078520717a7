package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"testing"
)

// TestHTTPHosts: -http-host is repeatable, comes from DISCAL_HTTP_HOST
// separated by spaces (the command line wins), and takes DNS names only.
func TestHTTPHosts(t *testing.T) {
	for i, tc := range []struct {
		args []string
		env  string
		want []string // nil: a usage error
	}{
		{nil, "", []string{}},
		{[]string{"-http-host", "proxy.example.com"}, "", []string{"proxy.example.com"}},
		{[]string{"-http-host", "a.example", "-http-host", "B.example."}, "", []string{"a.example", "B.example."}},
		{nil, "a.example b.example", []string{"a.example", "b.example"}},
		{[]string{"-http-host", "c.example"}, "a.example", []string{"c.example"}},
		{[]string{"-http-host", "proxy"}, "", []string{"proxy"}},
		{[]string{"-http-host", "http://proxy.example"}, "", nil},
		{[]string{"-http-host", "proxy.example:9100"}, "", nil},
		{[]string{"-http-host", "proxy.example/x"}, "", nil},
		{[]string{"-http-host", ""}, "", nil},
		{[]string{"-http-host", "a..example"}, "", nil},
		{[]string{"-http-host", "a b"}, "", nil},
		{nil, "a.example b:1", nil},
	} {
		t.Run(fmt.Sprint(i, tc.args, tc.env), func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("DISCAL_HTTP_HOST", tc.env)
			}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c := Register(fs, "x")
			hosts := c.HTTPHosts(fs)
			err := c.Parse(fs, tc.args, io.Discard, "http-host")
			switch {
			case tc.want == nil && err == nil:
				t.Fatalf("took %q", *hosts)
			case tc.want != nil && err != nil:
				t.Fatal(err)
			case tc.want != nil && !slices.Equal(*hosts, tc.want) && len(*hosts)+len(tc.want) > 0:
				t.Fatalf("hosts %q, want %q", *hosts, tc.want)
			}
		})
	}
}
