//go:build unix

package controlkey

import (
	"os"
	"syscall"
)

// fileGroup returns the group that owns the file.
func fileGroup(fi os.FileInfo) (gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Gid), true
}
