package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A burden is a server told to burn a fraction of a core for part of a
// run (the status port's text command "burn F"), so that a plot shows
// what the proxy does about it, with markers where it starts and stops.
type burden struct {
	who      string // as the flag named it: a server's name (-local) or its status port
	addr     string // its status port
	frac     float64
	from, to time.Duration // from the start of the run
}

// parseBurden reads -burden's WHO=F@FROM-TO, for example s1=0.8@3s-6s.
func parseBurden(s string) (burden, error) {
	bad := fmt.Errorf("-burden %q: want WHO=FRACTION@FROM-TO, e.g. s1=0.8@3s-6s or 127.0.0.1:7101=0.8@3s-6s", s)
	who, rest, ok1 := strings.Cut(s, "=")
	f, span, ok2 := strings.Cut(rest, "@")
	from, to, ok3 := strings.Cut(span, "-")
	if !ok1 || !ok2 || !ok3 || who == "" {
		return burden{}, bad
	}
	b := burden{who: who, addr: who}
	var err1, err2, err3 error
	b.frac, err1 = strconv.ParseFloat(f, 64)
	b.from, err2 = time.ParseDuration(from)
	b.to, err3 = time.ParseDuration(to)
	if err1 != nil || err2 != nil || err3 != nil || b.frac <= 0 || b.frac > 1 || b.from < 0 || b.to <= b.from {
		return burden{}, bad
	}
	return b, nil
}

// applyBurdens tells each server to burn at its start and to stop at its
// end, timed from now, until ctx ends; the returned function waits for
// that and makes sure every burden is lifted, however the run ended.
func applyBurdens(ctx context.Context, burdens []burden) (finish func()) {
	ctx, cancel := context.WithCancel(ctx)
	start := time.Now()
	var wg sync.WaitGroup
	for _, b := range burdens {
		wg.Go(func() {
			if sleepUntil(ctx, start.Add(b.from)) {
				tellBurn(b, b.frac)
				sleepUntil(ctx, start.Add(b.to))
			}
			tellBurn(b, 0)
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// sleepUntil waits until t or the end of ctx; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func tellBurn(b burden, frac float64) {
	if _, err := askText(b.addr, fmt.Sprintf("burn %g\n", frac)); err != nil {
		fmt.Fprintf(os.Stderr, "bench: burden on %s: %v\n", b.who, err)
	}
}

// burdenList is the repeatable -burden flag.
type burdenList []burden

func (l *burdenList) String() string { return "" }

func (l *burdenList) Set(s string) error {
	b, err := parseBurden(s)
	if err != nil {
		return err
	}
	*l = append(*l, b)
	return nil
}
