//go:build unix

package exclusive

import (
	"os"
	"syscall"
)

// lock takes an exclusive flock on f, waiting for it. flock belongs to the
// open file, so two tests in one process exclude each other too.
func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
