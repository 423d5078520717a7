package codec

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A UDP source address is not authentication: anyone who can send a
// datagram can write any source into it. So a control message (a drain, a
// burn, a join, a join ack) that must not be forged carries a seal, as a
// DNS message carries a TSIG (RFC 8945): its kind has the KindSealed flag
// set, and after its body come
//
//	offset from the end  size  field
//	-40                  8     timestamp, Unix nanoseconds, big-endian
//	-32                  32    HMAC-SHA256 under the shared key of every
//	                           byte before it: magic, kind, ID, body and
//	                           timestamp
//
// A receiver with the key obeys the message only when the MAC checks (in
// constant time), the timestamp lies within SealWindow of its own clock,
// and the same MAC has not been seen within the window (ReplayCache). The
// kind is under the MAC, so that a sealed join cannot be replayed as a
// control command.

// SealSize is the length of a seal: a timestamp and an HMAC-SHA256.
const SealSize = 8 + sha256.Size

// SealWindow is how far a seal's timestamp may lie from the receiver's
// clock, either way. It bounds how long a captured message could be
// replayed, and how long the replay cache must remember it; hosts keep
// their clocks within it with NTP.
const SealWindow = 30 * time.Second

// MinKeySize is the shortest key a seal takes: 32 bytes, the HMAC-SHA256
// output size, below which the key and not the hash is the weak part.
const MinKeySize = 32

// ErrUnauthenticated is wrapped by every error of Open and Check: the
// message must not be obeyed, and is not answered.
var ErrUnauthenticated = errors.New("codec: unauthenticated")

// Why a message was refused, each wrapping ErrUnauthenticated.
var (
	ErrNoSeal     = fmt.Errorf("%w: no seal", ErrUnauthenticated)
	ErrBadSeal    = fmt.Errorf("%w: the seal does not check", ErrUnauthenticated)
	ErrStale      = fmt.Errorf("%w: timestamp outside the window", ErrUnauthenticated)
	ErrReplay     = fmt.Errorf("%w: seen before", ErrUnauthenticated)
	ErrReplayFull = fmt.Errorf("%w: replay cache full", ErrUnauthenticated)
)

// MAC is a seal's HMAC-SHA256.
type MAC [sha256.Size]byte

// Seal turns msg, a whole datagram as the Append functions write it, into
// its sealed form in place: it sets KindSealed in the kind and appends the
// timestamp now and the MAC under key. msg must hold at least a header.
func Seal(msg, key []byte, now time.Time) []byte {
	msg[1] |= byte(KindSealed)
	msg = binary.BigEndian.AppendUint64(msg, uint64(now.UnixNano()))
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(msg)
}

// Check checks msg's seal under key at time now: the KindSealed flag, the
// timestamp within SealWindow, the MAC. It returns the body between the
// header and the seal, the seal's MAC and timestamp (Unix nanoseconds), or
// an error that wraps ErrUnauthenticated. It does not look for replays:
// that is Authenticator.Open.
func Check(msg, key []byte, now time.Time) (body []byte, mac MAC, ts int64, err error) {
	if len(msg) < HeaderSize+SealSize || msg[0] != Magic || !Kind(msg[1]).Sealed() {
		return nil, mac, 0, ErrNoSeal
	}
	end := len(msg) - sha256.Size
	ts = int64(binary.BigEndian.Uint64(msg[end-8 : end]))
	// The window first: it is cheap, and an old message needs no hash.
	if d := now.UnixNano() - ts; d > int64(SealWindow) || d < -int64(SealWindow) {
		return nil, mac, 0, ErrStale
	}
	m := hmac.New(sha256.New, key)
	m.Write(msg[:end])
	var sum MAC
	if !hmac.Equal(m.Sum(sum[:0]), msg[end:]) {
		return nil, mac, 0, ErrBadSeal
	}
	return msg[HeaderSize : end-8], sum, ts, nil
}

// Authenticator seals messages with a shared key and opens them, with a
// replay cache. It is safe for concurrent use.
type Authenticator struct {
	key    []byte
	replay *ReplayCache
}

// NewAuthenticator returns an authenticator for key, which must be at least
// MinKeySize bytes, with a replay cache of DefaultReplayEntries.
func NewAuthenticator(key []byte) (*Authenticator, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("codec: key of %d bytes: at least %d", len(key), MinKeySize)
	}
	return &Authenticator{key: append([]byte(nil), key...), replay: NewReplayCache(DefaultReplayEntries)}, nil
}

// Seal seals msg in place (see Seal).
func (a *Authenticator) Seal(msg []byte, now time.Time) []byte { return Seal(msg, a.key, now) }

// Open checks msg's seal (see Check) and that it was not seen before
// within the window, and returns its body. A message that passes is
// remembered, so that the same datagram is refused the second time.
func (a *Authenticator) Open(msg []byte, now time.Time) ([]byte, error) {
	body, mac, ts, err := Check(msg, a.key, now)
	if err != nil {
		return nil, err
	}
	if err := a.replay.Add(mac, ts, now.UnixNano()); err != nil {
		return nil, err
	}
	return body, nil
}

// DefaultReplayEntries bounds a replay cache: enough for a thousand servers
// joining once a second, each join remembered for the window.
const DefaultReplayEntries = 1 << 16

// ReplayCache remembers the MACs of the sealed messages taken until their
// timestamps leave SealWindow, after which Check refuses them anyway. Only
// messages whose MAC checked are added, so only a key holder can fill it;
// when it is full of messages still within the window, new ones are
// refused until room is made, rather than forgetting one that could then
// be replayed. It is safe for concurrent use.
type ReplayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[MAC]int64 // MAC -> when it may be forgotten, Unix nanoseconds
	swept int64
}

// NewReplayCache returns a cache that holds at most max messages.
func NewReplayCache(max int) *ReplayCache {
	return &ReplayCache{max: max, seen: make(map[MAC]int64)}
}

// Add records a message's MAC, sealed at ts, at time now (Unix
// nanoseconds). It returns ErrReplay when the MAC was seen before, and
// ErrReplayFull when the cache is full of messages still within the window.
func (c *ReplayCache) Add(mac MAC, ts, now int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[mac]; ok {
		return ErrReplay
	}
	// Sweep once a window, or when full: a sweep visits every entry.
	if now-c.swept > int64(SealWindow) || len(c.seen) >= c.max {
		c.sweep(now)
	}
	if len(c.seen) >= c.max {
		return ErrReplayFull
	}
	c.seen[mac] = ts + int64(SealWindow)
	return nil
}

func (c *ReplayCache) sweep(now int64) {
	c.swept = now
	for m, until := range c.seen {
		if until < now {
			delete(c.seen, m)
		}
	}
}

// Len returns how many messages the cache remembers.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Accept returns the body of msg, a control message whose header has been
// parsed, if it may be obeyed, or an error that wraps ErrUnauthenticated.
// It is the one rule for every receiver of control messages:
//
//   - without a key (a nil Authenticator) every message is taken, sealed or
//     not, as it was before there were seals: the receiver trusts the
//     sources it allows;
//   - with a key, a sealed message must open (Open), and an unsealed one is
//     taken only from a trusted source: loopback, a local operator.
func (a *Authenticator) Accept(msg []byte, trusted bool, now time.Time) ([]byte, error) {
	sealed := len(msg) > 1 && Kind(msg[1]).Sealed()
	switch {
	case a != nil && sealed:
		return a.Open(msg, now)
	case a != nil && !trusted:
		return nil, ErrNoSeal
	case sealed:
		if len(msg) < HeaderSize+SealSize {
			return nil, ErrNoSeal
		}
		return msg[HeaderSize : len(msg)-SealSize], nil
	}
	return msg[HeaderSize:], nil
}
