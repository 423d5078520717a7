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
// read: a key anyone on the host can read authenticates nobody.
var ErrInsecure = errors.New("controlkey: key file readable by group or others")

// ErrShort is wrapped by Load's error for a key file under MinSize bytes.
var ErrShort = errors.New("controlkey: key file too short")

// Load reads the key in file: the file's bytes as they are, at least
// MinSize of them, in a file that neither group nor others may read or
// write (mode 0600 or 0400).
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
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o; chmod 600 it", ErrInsecure, file, perm)
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
	return key, nil
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
