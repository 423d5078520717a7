package udpproxy

import "errors"

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("udpproxy: proxy closed")
