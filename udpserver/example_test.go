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
// down: Serve returns ErrServerClosed.
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
	_, _ = c.Write([]byte("6 * 7\n"))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
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
