// Package udpclient is the discal client for Go programs: one UDP socket
// per proxy shared by any number of goroutines, replies matched to callers
// by request ID, and retransmission with backoff when an answer does not
// come. Given several proxies, it moves to the next one when a proxy does
// not answer, answers only with a transient error, or is refused by the
// network (nothing listens there).
//
//	c, err := udpclient.DialContext(ctx, []string{"10.0.0.5:7000", "10.0.0.6:7000"}, udpclient.Config{})
//	if err != nil { ... }
//	defer c.Close()
//	n, err := c.Calc(ctx, codec.OpMul, codec.IntNumber(6), codec.IntNumber(7)) // 42
//
// Dial("10.0.0.5:7000,10.0.0.6:7000", cfg) is the same with the addresses
// in one string. A calculation that fails (division by zero, overflow,
// ...) returns a *codec.Error, once: the reply that Do returns never
// carries it as well. When no usable answer comes, the error is a
// *NoAnswerError that matches ErrNoAnswer and names the proxies tried; the
// context's deadline ends the retries early, with an error matching
// ErrNoAnswer and context.DeadlineExceeded. Exchange returns the request's
// ID, tries and latency with the answer.
//
// The udpclient command (cmd/udpclient) is built on this package; its
// output formats and exit statuses are its own.
package udpclient
