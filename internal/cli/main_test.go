package cli

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/discal/discal/internal/testbin"
)

// bins are the binaries the process tests run, built on first use.
var bins = &testbin.Set{Pkgs: []string{"../../cmd/udpproxy"}}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		bins.Remove()
		os.Exit(code)
	}))
}
