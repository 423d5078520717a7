package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
)

// rogueChildEnv makes the bench binary a misbehaving process of the -rogue
// mode. Its value says which:
//
//	blackhole,CORES      a status port that reports itself idle with CORES
//	                     cores, and a calculator port that never answers
//	slow,CORES,DELAY     the same status port, and a calculator port that
//	                     answers every request right, DELAY late
//	relay,TARGET         a relay in front of the calculator port TARGET that
//	                     stops forwarding on the input line "pause" and
//	                     forwards again on "resume"
//
// Like a -fleet server process it prints "serving ADDR" (CALC,STATUS for a
// rogue, the relay's address for a relay) and then "ready", and stops on
// SIGINT, SIGTERM or the end of its standard input.
const rogueChildEnv = "DISCAL_BENCH_ROGUE_CHILD"

// rogueName is the name a rogue gives in its status and its answers.
const rogueName = "rogue"

func rogueChild(spec string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fields := strings.Split(spec, ",")
	var err error
	switch {
	case fields[0] == "relay" && len(fields) == 2:
		err = runRelayChild(ctx, stop, fields[1])
	case (fields[0] == "blackhole" && len(fields) == 2) || (fields[0] == "slow" && len(fields) == 3):
		go func() {
			_, _ = os.Stdin.Read(make([]byte, 1)) // returns at EOF: the bench is gone
			stop()
		}()
		err = runRogueServer(ctx, fields)
	default:
		err = fmt.Errorf("%s=%q: want blackhole,CORES or slow,CORES,DELAY or relay,TARGET", rogueChildEnv, spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench rogue:", err)
		return 1
	}
	return 0
}

// runRogueServer serves a rogue's status and calculator ports until ctx ends.
func runRogueServer(ctx context.Context, fields []string) error {
	cores, err := strconv.Atoi(fields[1])
	if err != nil || cores < 0 {
		return fmt.Errorf("cores %q: want a count", fields[1])
	}
	var delay time.Duration
	if fields[0] == "slow" {
		if delay, err = time.ParseDuration(fields[2]); err != nil || delay < 0 {
			return fmt.Errorf("delay %q: want a duration", fields[2])
		}
	}
	calcConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	statusConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		calcConn.Close()
		return err
	}
	_ = calcConn.SetReadBuffer(socketBuffer)
	st := codec.Status{Server: rogueName, Cores: cores, HostID: "rogue-host",
		ProcID: strconv.FormatUint(rand.Uint64(), 36), HostCores: cores,
		CalcPort: uint16(calcConn.LocalAddr().(*net.UDPAddr).Port)}
	var wg sync.WaitGroup
	wg.Go(func() { serveRogueStatus(statusConn, st) })
	if fields[0] == "slow" {
		wg.Go(func() { serveSlow(calcConn, delay) })
	} else {
		wg.Go(func() { blackhole(calcConn) })
	}
	fmt.Printf("serving %s,%s\n", calcConn.LocalAddr(), statusConn.LocalAddr())
	fmt.Println("ready")
	<-ctx.Done()
	calcConn.Close()
	statusConn.Close()
	wg.Wait()
	return nil
}

// socketBuffer is what the rogue's and the relay's sockets ask for, so
// that a burst under load is not lost to a small default buffer.
const socketBuffer = 4 << 20

// serveRogueStatus answers every status query with st: idle, whatever
// happens on the calculator port.
func serveRogueStatus(conn *net.UDPConn, st codec.Status) {
	start := time.Now()
	buf := make([]byte, codec.MaxDatagram)
	var out []byte
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		h, err := codec.ParseHeader(buf[:n])
		if err != nil || h.Kind != codec.KindStatusQuery {
			continue
		}
		st.Uptime = time.Since(start)
		out = codec.AppendStatus(out[:0], h.ID, st)
		_, _ = conn.WriteToUDPAddrPort(out, from)
	}
}

// blackhole reads and drops everything, so that no ICMP error tells the
// sender either: the port simply never answers.
func blackhole(conn *net.UDPConn) {
	buf := make([]byte, codec.MaxDatagram)
	for {
		if _, _, err := conn.ReadFromUDPAddrPort(buf); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// delayed is an answer waiting for its time.
type delayed struct {
	at  time.Time
	to  netip.AddrPort
	pkt []byte
}

// slowQueue bounds the answers waiting: beyond it the rogue drops requests,
// as a real overloaded server would.
const slowQueue = 1 << 16

// serveSlow answers every request right, delay after it came. The delay is
// the same for all, so a FIFO queue holds them in the order they are due.
func serveSlow(conn *net.UDPConn, delay time.Duration) {
	queue := make(chan delayed, slowQueue)
	var wg sync.WaitGroup
	wg.Go(func() {
		for d := range queue {
			time.Sleep(time.Until(d.at))
			_, _ = conn.WriteToUDPAddrPort(d.pkt, d.to)
		}
	})
	defer wg.Wait()
	defer close(queue)
	buf := make([]byte, codec.MaxDatagram)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pkt, ok := rogueAnswer(buf[:n])
		if !ok {
			continue
		}
		select {
		case queue <- delayed{at: time.Now().Add(delay), to: from, pkt: pkt}:
		default:
		}
	}
}

// rogueAnswer computes the reply to a binary request, right.
func rogueAnswer(pkt []byte) ([]byte, bool) {
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindRequest {
		return nil, false
	}
	reply := codec.Reply{Server: rogueName}
	req, err := codec.DecodeRequest(pkt[codec.HeaderSize:])
	if err == nil {
		reply.Result, err = arith.Eval(req.Op, req.A, req.B)
	}
	if err != nil {
		reply.Err = codec.AsError(err)
	}
	return codec.AppendReply(nil, h.ID, reply), true
}

// runRelayChild relays to target until its input ends, pausing and
// resuming as the input lines say.
func runRelayChild(ctx context.Context, stop func(), target string) error {
	to, err := netip.ParseAddrPort(target)
	if err != nil {
		return fmt.Errorf("relay target %q: %w", target, err)
	}
	r, err := startPausable(to)
	if err != nil {
		return err
	}
	defer r.close()
	fmt.Printf("serving %s\n", r.listen.LocalAddr())
	fmt.Println("ready")
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "pause":
				r.paused.Store(true)
			case "resume":
				r.paused.Store(false)
			}
		}
		stop() // the bench is gone
	}()
	<-ctx.Done()
	return nil
}

// pausable is a plain UDP relay that can stop forwarding both ways: a
// calculator port that goes dead and comes back, while the server behind
// it, and its status port, carry on.
type pausable struct {
	listen *net.UDPConn
	target netip.AddrPort
	paused atomic.Bool
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[netip.AddrPort]*net.UDPConn // a socket towards the target per client
	closed   bool
}

func startPausable(target netip.AddrPort) (*pausable, error) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = l.SetReadBuffer(socketBuffer)
	r := &pausable{listen: l, target: target, sessions: map[netip.AddrPort]*net.UDPConn{}}
	r.wg.Go(r.forward)
	return r, nil
}

func (r *pausable) forward() {
	buf := make([]byte, codec.MaxDatagram)
	for {
		n, from, err := r.listen.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if r.paused.Load() {
			continue
		}
		if c := r.session(from); c != nil {
			_, _ = c.Write(buf[:n])
		}
	}
}

// session is the client's socket towards the target, made on first use
// with a reader that sends the answers back from the relay's address.
func (r *pausable) session(client netip.AddrPort) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.sessions[client]; ok || r.closed {
		return c
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.target))
	if err != nil {
		return nil
	}
	_ = c.SetReadBuffer(socketBuffer)
	r.sessions[client] = c
	r.wg.Go(func() {
		buf := make([]byte, codec.MaxDatagram)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if !r.paused.Load() {
				_, _ = r.listen.WriteToUDPAddrPort(buf[:n], client)
			}
		}
	})
	return c
}

func (r *pausable) close() {
	r.listen.Close()
	r.mu.Lock()
	r.closed = true
	for _, c := range r.sessions {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
