package codec

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Names and error messages come from servers, which a proxy trusts no
// further than the network they are on, and end up in log lines, the
// proxy's stats, metric labels and a person's terminal. A newline in a name
// would forge a line of stats, invalid UTF-8 would make every metrics
// scrape fail, an escape sequence would reach the terminal. So the decoders
// refuse them where they enter: a reply, status reply or join carrying one
// is not decoded at all, and the error wraps ErrBadText so that the
// receiver can count it. Refusing rather than cleaning the text up keeps
// one rule on both ends: what a discal server sends always passes (its
// name is checked by the same function when it starts), so only a faulty
// or hostile peer is refused.

// MaxName is the longest server name, in bytes.
const MaxName = 64

// MaxMessage is the longest error message a reply may carry, in bytes. The
// messages discal writes are under 100 bytes, and echo at most 24 bytes of
// what they refuse.
const MaxMessage = 256

// CheckName reports whether name may name a server: at most MaxName bytes
// of printable ASCII without spaces, so that it is one word in a log line,
// a status line or a stats line. The empty name passes: it means none.
func CheckName(name string) error {
	if len(name) > MaxName {
		return fmt.Errorf("%w: name of %d bytes, over %d", ErrBadText, len(name), MaxName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: name %q: printable ASCII without spaces only", ErrBadText, clip(name))
		}
	}
	return nil
}

// CheckMessage reports whether msg may be an error reply's message: at
// most MaxMessage bytes of valid UTF-8, every character printable (a space
// is, a control character, a line end or a tab is not).
func CheckMessage(msg string) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("%w: message of %d bytes, over %d", ErrBadText, len(msg), MaxMessage)
	}
	for i, r := range msg {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return fmt.Errorf("%w: message %q: a character that is not printable at byte %d", ErrBadText, clip(msg), i)
		}
	}
	return nil
}
