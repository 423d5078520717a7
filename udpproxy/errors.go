package udpproxy

import "errors"

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("udpproxy: proxy closed")

// ErrNotUDP is returned by Serve when it is handed a socket that is not a
// *net.UDPConn: the proxy reads and writes in batches (recvmmsg, sendmmsg,
// GSO), which need the UDP socket itself.
var ErrNotUDP = errors.New("udpproxy: Serve needs a *net.UDPConn")
