package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/discal/discal/udpserver"
)

// fleetChildEnv, when set to "FIRST,COUNT", makes the bench binary a
// server process of the -fleet mode: it serves COUNT quiet servers named
// sFIRST onwards on loopback ports of its choosing, prints
// "serving CALC,STATUS" for each and then "ready", and stops on SIGINT,
// SIGTERM or the end of its standard input.
const fleetChildEnv = "DISCAL_BENCH_FLEET_CHILD"

// fleetChild runs the server-process mode; it returns the exit status.
func fleetChild(spec string) int {
	first, count, err := parseChildSpec(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench fleet server:", err)
		return 64
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = os.Stdin.Read(make([]byte, 1)) // returns at EOF: the bench is gone
		stop()
	}()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var servers []*udpserver.Server
	var wg sync.WaitGroup
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
		wg.Wait()
	}()
	for i := range count {
		s, addr, err := startChildServer(fmt.Sprintf("s%d", first+i), logger, &wg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench fleet server:", err)
			return 1
		}
		servers = append(servers, s)
		fmt.Printf("serving %s\n", addr)
	}
	fmt.Println("ready")
	<-ctx.Done()
	return 0
}

func parseChildSpec(spec string) (first, count int, err error) {
	a, b, ok := strings.Cut(spec, ",")
	first, err1 := strconv.Atoi(a)
	count, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || first < 1 || count < 1 {
		return 0, 0, fmt.Errorf("%s=%q: want FIRST,COUNT", fleetChildEnv, spec)
	}
	return first, count, nil
}

// startChildServer serves one quiet server on two fresh loopback ports and
// returns it with "CALC,STATUS".
func startChildServer(name string, logger *slog.Logger, wg *sync.WaitGroup) (*udpserver.Server, string, error) {
	s, err := udpserver.New(udpserver.Config{Name: name, Quiet: true, Logger: logger})
	if err != nil {
		return nil, "", err
	}
	calc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	status, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		calc.Close()
		return nil, "", err
	}
	addr := calc.LocalAddr().String() + "," + status.LocalAddr().String()
	wg.Go(func() { _ = s.Serve(calc, status) })
	return s, addr, nil
}
