// Package controlkey reads and writes the shared key that seals discal's
// control messages (udpserver and udpproxy -control-key). It is one place
// for the rules on the file, so that both binaries refuse the same keys.
package controlkey

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
)

// MinSize is the fewest bytes a key file holds. It matches the codec's
// MinKeySize; internal/ imports nothing of discal's, so the number is
// repeated, and a test holds the two together.
const MinSize = 32

// maxSize bounds a key file.
const maxSize = 4096

// GenSize is how many random bytes Generate writes.
const GenSize = 32

// ErrInsecure is wrapped by Load's error for a key file that others may
// read or change: a key anyone on the host can read authenticates nobody.
var ErrInsecure = errors.New("controlkey: key file others may read or write")

// ErrShort is wrapped by Load's error for a key file under MinSize bytes.
var ErrShort = errors.New("controlkey: key file too short")

// ErrWeak is wrapped by Load's error for a key that is long enough but not
// random: fewer than MinDistinct different bytes (32 zero bytes, a
// repeated word, a short password typed over and over).
var ErrWeak = errors.New("controlkey: weak key")

// MinDistinct is the fewest different byte values a key holds. 32 random
// bytes hold 30 on average; fewer than 16 happens by chance to 3 keys in
// 10^17, so what has fewer was not made at random.
const MinDistinct = 16

// Load reads the key in file: the file's bytes as they are, at least
// MinSize of them and MinDistinct different ones, in a file (or what a
// symlink leads to) that no one but its owner may write and others may not
// read. Its group may read it when that group is this process's own, or
// one of its supplementary groups: a Kubernetes Secret mounted with an
// fsGroup is root:GID mode 0440 for a process running with that GID.
func Load(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("controlkey: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("controlkey: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("controlkey: %s: not a regular file", file)
	}
	if err := checkMode(file, fi); err != nil {
		return nil, err
	}
	// A key is small: anything longer is the wrong file.
	key, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("controlkey: %s: %w", file, err)
	case len(key) < MinSize:
		return nil, fmt.Errorf("%w: %s holds %d bytes, at least %d needed (make one with udpserver -gen-key FILE)", ErrShort, file, len(key), MinSize)
	case len(key) > maxSize:
		return nil, fmt.Errorf("controlkey: %s: over %d bytes, not a key", file, maxSize)
	}
	if n := distinct(key); n < MinDistinct {
		return nil, fmt.Errorf("%w: %s holds %d different byte values, at least %d needed: not random (make one with udpserver -gen-key FILE)",
			ErrWeak, file, n, MinDistinct)
	}
	return key, nil
}

// checkMode refuses a key file that others may read, or anyone but its
// owner may write, or that a group this process is not in may read.
func checkMode(file string, fi os.FileInfo) error {
	perm := fi.Mode().Perm()
	switch {
	case perm&0o022 != 0:
		return fmt.Errorf("%w: %s has mode %#o, writable by group or others; chmod 600 it", ErrInsecure, file, perm)
	case perm&0o004 != 0:
		return fmt.Errorf("%w: %s has mode %#o, readable by others; chmod 600 it", ErrInsecure, file, perm)
	case perm&0o040 == 0:
		return nil
	}
	gid, ok := fileGroup(fi)
	if !ok {
		return fmt.Errorf("%w: %s has mode %#o, readable by its group, which cannot be checked here; chmod 600 it", ErrInsecure, file, perm)
	}
	if inGroup(gid) {
		return nil
	}
	return fmt.Errorf("%w: %s has mode %#o, readable by group %d, which this process is not in; chmod 600 it, or make it this process's group (%d)",
		ErrInsecure, file, perm, gid, os.Getgid())
}

// inGroup reports whether gid is this process's group or one of its
// supplementary groups.
func inGroup(gid int) bool {
	if gid == os.Getgid() {
		return true
	}
	groups, err := os.Getgroups()
	if err != nil {
		return false
	}
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

// distinct counts the different byte values in b.
func distinct(b []byte) int {
	var seen [256]bool
	n := 0
	for _, c := range b {
		if !seen[c] {
			seen[c] = true
			n++
		}
	}
	return n
}

// Generate writes a new key of GenSize random bytes to file, with mode
// 0600. It does not overwrite a file that exists: replacing a key in use
// would cut a server off from its proxy.
func Generate(file string) error {
	key := make([]byte, GenSize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("controlkey: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("controlkey: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return fmt.Errorf("controlkey: %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("controlkey: %s: %w", file, err)
	}
	return nil
}
