package udpserver_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/udpserver"
)

// A server on sockets the caller opened, asked in the text form, then shut
// down: Serve returns ErrServerClosed. Example code panics where a program
// would report the error and stop.
func Example() {
	calc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	status, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv, err := udpserver.New(udpserver.Config{Name: "s1", Quiet: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(calc, status) }()

	c, err := net.Dial("udp", calc.LocalAddr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("6 * 7\n")); err != nil {
		panic(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		panic(err)
	}
	buf := make([]byte, codec.MaxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(buf[:n]))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		panic(err)
	}
	fmt.Println(<-done)
	// Output:
	// 42
	// udpserver: server closed
}

// A server on port 0 says where it listens once it serves: ListenAndServe
// opens both ports, and Addr and StatusAddr are nil until then.
func ExampleServer_Addr() {
	srv, err := udpserver.New(udpserver.Config{Addr: "127.0.0.1:0", StatusAddr: "127.0.0.1:0", Name: "s1",
		Quiet: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	fmt.Println(srv.Addr() == nil)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	// There is no signal for "serving": ask until it says, within a bound.
	for deadline := time.Now().Add(5 * time.Second); srv.Addr() == nil && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	calc, ok := srv.Addr().(*net.UDPAddr)
	if !ok {
		panic("not serving after 5s")
	}
	fmt.Println(calc.IP, calc.Port != 0, srv.StatusAddr().(*net.UDPAddr).Port != calc.Port)

	c, err := net.Dial("udp", calc.String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("add 2 3\n")); err != nil {
		panic(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		panic(err)
	}
	buf := make([]byte, codec.MaxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(buf[:n]))
	if err := srv.Close(); err != nil {
		panic(err)
	}
	fmt.Println(<-done)
	// Output:
	// true
	// 127.0.0.1 true true
	// 5
	// udpserver: server closed
}
