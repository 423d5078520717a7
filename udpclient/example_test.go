package udpclient_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// startDiscal runs one udpserver named s1 behind a udpproxy, each on
// sockets bound to 127.0.0.1:0, and returns the proxy's address and a
// function that stops both. Example code panics where a program would
// report the error and stop.
func startDiscal() (proxy string, stop func()) {
	quiet := slog.New(slog.DiscardHandler)
	listen := func() net.PacketConn {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		return c
	}
	calc, status, front := listen(), listen(), listen()
	srv, err := udpserver.New(udpserver.Config{Name: "s1", Quiet: true, Logger: quiet})
	if err != nil {
		panic(err)
	}
	// Serve returns ErrServerClosed after a shutdown, and any other error
	// when a socket fails under it: keep it, to check.
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(calc, status) }()
	p, err := udpproxy.New(udpproxy.Config{
		Servers: []udpproxy.ServerAddr{{Calc: calc.LocalAddr().String(), Status: status.LocalAddr().String()}},
		Logger:  quiet,
	})
	if err != nil {
		panic(err)
	}
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- p.Serve(front) }()
	return front.LocalAddr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := errors.Join(p.Shutdown(ctx), srv.Shutdown(ctx)); err != nil {
			panic(err)
		}
		if err := <-proxyDone; !errors.Is(err, udpproxy.ErrServerClosed) {
			panic(err)
		}
		if err := <-srvDone; !errors.Is(err, udpserver.ErrServerClosed) {
			panic(err)
		}
	}
}

func Example() {
	proxy, stop := startDiscal()
	defer stop()

	c, err := udpclient.Dial(proxy, udpclient.Config{})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	n, err := c.Calc(context.Background(), codec.OpMul, codec.IntNumber(6), codec.IntNumber(7))
	fmt.Println(n, err)

	// A calculation that fails returns its error, once, as a *codec.Error.
	_, err = c.Calc(context.Background(), codec.OpDiv, codec.IntNumber(1), codec.IntNumber(0))
	var e *codec.Error
	fmt.Println(errors.As(err, &e), e.Code == codec.CodeDivByZero, err)
	// Output:
	// 42 <nil>
	// true true division by zero
}

// Eval takes an expression as a person types it. One that does not parse
// is refused here, with the error a server would answer, and never sent.
func ExampleClient_Eval() {
	proxy, stop := startDiscal()
	defer stop()

	c, err := udpclient.Dial(proxy, udpclient.Config{})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, expr := range []string{"6 * 7", "add 2 3", "7 / 2", "1 / 0", "6 *"} {
		n, err := c.Eval(context.Background(), expr)
		var e *codec.Error
		switch {
		case errors.As(err, &e):
			fmt.Printf("%s: code %d, %v\n", expr, e.Code, err)
		case err != nil:
			fmt.Printf("%s: %v\n", expr, err) // no answer
		default:
			fmt.Printf("%s = %v\n", expr, n)
		}
	}
	// Output:
	// 6 * 7 = 42
	// add 2 3 = 5
	// 7 / 2 = 3.5
	// 1 / 0: code 5, division by zero
	// 6 *: code 10, syntax error: want NUMBER OP NUMBER or OP NUMBER NUMBER
}

// DialContext takes the proxies as a list, in the order to try them; a
// context with a deadline bounds each request's retries.
func ExampleDialContext() {
	proxy, stop := startDiscal()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := udpclient.DialContext(ctx, []string{proxy}, udpclient.Config{Timeout: 500 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	req, err := codec.ParseExpr("7 / 2")
	if err != nil {
		panic(err)
	}
	ans, err := c.Exchange(ctx, req)
	fmt.Println(ans.Result, ans.Server, ans.Proxy == proxy, ans.Tries >= 1, ans.Latency > 0, err)
	// Output: 3.5 s1 true true true <nil>
}

// With no proxy listening, the network says so and the request fails at
// once: the error matches ErrNoAnswer and syscall.ECONNREFUSED, and names
// the address.
func ExampleNoAnswerError() {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	nobody := conn.LocalAddr().String()
	if err := conn.Close(); err != nil { // now nothing listens there
		panic(err)
	}

	c, err := udpclient.Dial(nobody, udpclient.Config{Timeout: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Calc(context.Background(), codec.OpAdd, codec.IntNumber(2), codec.IntNumber(3))
	var na *udpclient.NoAnswerError
	fmt.Println(errors.Is(err, udpclient.ErrNoAnswer), errors.Is(err, syscall.ECONNREFUSED), time.Since(start) < time.Second)
	fmt.Println(errors.As(err, &na) && na.Proxies[0] == nobody, na.Tries)
	// Output:
	// true true true
	// true 1
}
