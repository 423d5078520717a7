package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal says whether r is a terminal: the session is then a person's,
// with a prompt. A character device is not enough (/dev/null is one).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
