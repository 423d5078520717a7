package udpproxy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/udpclient"
	"github.com/discal/discal/udpproxy"
	"github.com/discal/discal/udpserver"
)

// exampleSystem starts one server and a proxy in front of it with cfg,
// on sockets opened on 127.0.0.1:0, and returns a client of the proxy and
// a function that stops them all. Example code panics where a program
// would report the error and stop.
func exampleSystem(cfg udpproxy.Config) (*udpproxy.Proxy, *udpclient.Client, func()) {
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
	cfg.Servers = []udpproxy.ServerAddr{{Calc: calc.LocalAddr().String(), Status: status.LocalAddr().String()}}
	cfg.Logger = quiet
	p, err := udpproxy.New(cfg)
	if err != nil {
		panic(err)
	}
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- p.Serve(front) }()
	c, err := udpclient.Dial(front.LocalAddr().String(), udpclient.Config{})
	if err != nil {
		panic(err)
	}
	return p, c, func() {
		if err := c.Close(); err != nil {
			panic(err)
		}
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

// A proxy in front of one server, asked through the client library, then
// shut down: Shutdown waits for what is pending.
func Example() {
	p, c, stop := exampleSystem(udpproxy.Config{})
	defer stop()
	r, err := c.Calc(context.Background(), codec.OpMul, codec.IntNumber(6), codec.IntNumber(7))
	fmt.Println(r, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(p.Shutdown(ctx))
	// Output:
	// 42 <nil>
	// <nil>
}

// fewestInFlight is a policy written outside the package: of two servers
// drawn at random it takes the one with fewer requests in flight, and
// passes over the one a retry avoids.
type fewestInFlight struct{}

func (fewestInFlight) String() string { return "fewest-in-flight" }

func (fewestInFlight) Pick(c *udpproxy.Choice) *udpproxy.Server {
	a := c.Servers[c.Rand.IntN(len(c.Servers))]
	b := c.Servers[c.Rand.IntN(len(c.Servers))]
	if a == c.Avoid || (b != c.Avoid && b.InFlight() < a.InFlight()) {
		a = b
	}
	return a
}

// A policy of one's own: any type with Pick and String, given as
// Config.Policy. Pick sees the servers in rotation (never none) through
// read-only methods, and least-load's score through Choice.Score.
func ExamplePolicy() {
	p, c, stop := exampleSystem(udpproxy.Config{Policy: fewestInFlight{}})
	defer stop()
	r, err := c.Calc(context.Background(), codec.OpAdd, codec.IntNumber(2), codec.IntNumber(2))
	fmt.Println(r, err, p.Stats().Servers[0].Answered)
	// Output: 4 <nil> 1
}
