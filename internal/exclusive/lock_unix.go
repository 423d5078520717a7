//go:build unix

package exclusive

import (
	"os"
	"syscall"
)

// lock takes an exclusive flock on f, waiting for it. The lock belongs to
// the open file and goes with it when the process ends, however it ends.
func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
