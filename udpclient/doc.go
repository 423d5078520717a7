// Package udpclient is the discal client: one UDP socket per proxy shared by
// any number of goroutines, replies matched to callers by request ID, and
// retransmission with backoff when an answer does not come. Given several
// proxies ("10.0.0.5:7000,10.0.0.6:7000"), it moves to the next one when a
// proxy does not answer.
//
//	c, err := udpclient.Dial("127.0.0.1:7000", udpclient.Config{})
//	if err != nil { ... }
//	defer c.Close()
//	n, err := c.Calc(ctx, codec.OpMul, codec.IntNumber(6), codec.IntNumber(7)) // 42
//
// A calculation that fails (division by zero, overflow, ...) returns a
// *codec.Error. When no answer comes after every retry, or the proxy keeps
// answering with a transient error such as "no server available", Do
// returns an error that matches ErrNoAnswer.
package udpclient
