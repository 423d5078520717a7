package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/internal/faultnet"
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
	cfg := discaltest.FakeConfig{Name: rogueName, ReadBuffer: socketBuffer,
		// Idle, whatever happens on the calculator port.
		Status: &codec.Status{Server: rogueName, Cores: cores, HostID: "rogue-host",
			ProcID: strconv.FormatUint(rand.Uint64(), 36), HostCores: cores}}
	if fields[0] == "slow" {
		if cfg.Delay, err = time.ParseDuration(fields[2]); err != nil || cfg.Delay < 0 {
			return fmt.Errorf("delay %q: want a duration", fields[2])
		}
	} else {
		// A black hole reads and drops everything, so that no ICMP error
		// tells the sender either: the port simply never answers.
		cfg.Answer = func(discaltest.Request) (codec.Reply, bool) { return codec.Reply{}, false }
	}
	f, err := discaltest.ListenFake(cfg)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Printf("serving %s,%s\n", f.CalcAddr, f.StatusAddr)
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// socketBuffer is what the rogue's sockets ask for, so that a burst under
// load is not lost to a small default buffer.
const socketBuffer = 4 << 20

// runRelayChild relays to target until its input ends, pausing and
// resuming as the input lines say.
func runRelayChild(ctx context.Context, stop func(), target string) error {
	r, err := faultnet.Start(faultnet.Config{Target: target})
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Printf("serving %s\n", r.Addr())
	fmt.Println("ready")
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "pause":
				r.Pause(true)
			case "resume":
				r.Pause(false)
			}
		}
		stop() // the bench is gone
	}()
	<-ctx.Done()
	return nil
}
