package udpclient

import "errors"

var (
	// ErrNoAnswer means that no usable answer came after every retry.
	ErrNoAnswer = errors.New("udpclient: no answer")
	// ErrClosed is returned by calls on, or waiting on, a closed Client.
	ErrClosed = errors.New("udpclient: client closed")
)
