package udpclient

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNoAnswer means that no usable answer came: every retry went
	// unanswered, the proxies kept answering with a transient error, every
	// proxy refused, or the context's deadline came first. The error is a
	// *NoAnswerError, which says more.
	ErrNoAnswer = errors.New("udpclient: no answer")
	// ErrClosed is returned by calls on, or waiting on, a closed Client.
	ErrClosed = errors.New("udpclient: client closed")
)

// NoAnswerError is the error of a request that got no usable answer. It
// matches ErrNoAnswer and unwraps to its Cause, so errors.Is also finds the
// proxy's transient *codec.Error (codec.ErrNoServer, ...),
// syscall.ECONNREFUSED, or context.DeadlineExceeded.
type NoAnswerError struct {
	Proxies []string // the addresses tried, in the order of their first try
	Tries   int      // how many times the request was sent
	// Cause is the last reason given for a failed try: a transient
	// *codec.Error, syscall.ECONNREFUSED when the network said nothing
	// listens there, or context.DeadlineExceeded; nil when the proxies
	// were only ever silent.
	Cause error
}

func (e *NoAnswerError) Error() string {
	s := "udpclient: no answer from " + strings.Join(e.Proxies, ", ")
	switch {
	case e.Cause != nil:
		return s + ": " + e.Cause.Error()
	case e.Tries == 1:
		return s + " after 1 try"
	}
	return fmt.Sprintf("%s after %d tries", s, e.Tries)
}

// Is makes errors.Is(err, ErrNoAnswer) hold.
func (e *NoAnswerError) Is(target error) bool { return target == ErrNoAnswer }

// Unwrap returns the cause, so that errors.Is finds it too.
func (e *NoAnswerError) Unwrap() error { return e.Cause }
