package udpproxy

import "errors"

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("udpproxy: proxy closed")

// ErrNoServers is returned by New when the configuration names no server.
var ErrNoServers = errors.New("udpproxy: no servers configured")
