package udpproxy

import (
	"crypto/rand"
	"time"
)

// epoch is the moment the process started; nanotime counts from it.
var epoch = time.Now()

// nanotime is monotonic nanoseconds since the process started: deadlines,
// report ages and reply times are all read on this one clock, as plain
// integers that atomics can hold.
func nanotime() int64 { return int64(time.Since(epoch)) }

// seed returns 32 bytes from the operating system's CSPRNG. Request, poll
// and canary IDs are drawn from ChaCha8 streams seeded this way, so they
// cannot be guessed from the IDs an attacker sees.
func seed() [32]byte {
	var s [32]byte
	_, _ = rand.Read(s[:]) // crypto/rand.Read never fails on supported systems
	return s
}
