//go:build !unix

package controlkey

import "os"

// fileGroup is unknown where files have no Unix group: a key file readable
// by its group is then refused, as before.
func fileGroup(os.FileInfo) (gid int, ok bool) { return 0, false }
