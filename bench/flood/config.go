package flood

import (
	"errors"
	"fmt"
	"time"
)

// Config describes one run. Zero values mean the defaults.
type Config struct {
	// Targets are the endpoints to flood, HOST:PORT each; connections are
	// spread over them in turn. Required.
	Targets []string
	// Requests stops the run after this many requests have finished.
	Requests int
	// Duration stops starting requests after this long. With neither
	// Requests nor Duration, the run lasts 5 seconds.
	Duration time.Duration
	// InFlight is how many requests the closed loop keeps in flight, spread
	// over the connections. Default 128.
	InFlight int
	// Conns is how many sockets carry the load. Default 4, or one per
	// target when there are more targets.
	Conns int
	// Rate, when positive, switches to the open loop: this many requests a
	// second, each at its intended time, whatever is in flight.
	Rate float64
	// Timeout is how long the first try of a request waits; each retry
	// waits twice as long, up to 4×. Default 1s.
	Timeout time.Duration
	// Retries is how many times a request is sent again, with the same ID.
	// Default 3; NoRetries for none.
	Retries   int
	NoRetries bool
	// Seed makes the operations repeatable. Default 1.
	Seed uint64
	// Progress, if set, is called about four times a second while the run
	// lasts, from its own goroutine.
	Progress func(Snapshot)
	// Timeline, when positive, counts answers per server in buckets of this
	// width, by when they arrived, for plots and herd checks.
	Timeline time.Duration
	// NoGSO sends each request as its own datagram down the stack, as
	// ordinary clients do, instead of batching equal-sized requests into
	// UDP GSO sends.
	NoGSO bool
}

func (c *Config) fill() error {
	if len(c.Targets) == 0 {
		return errors.New("flood: no target")
	}
	if c.Requests < 0 || c.Duration < 0 || c.InFlight < 0 || c.Conns < 0 || c.Rate < 0 || c.Timeout < 0 || c.Retries < 0 || c.Timeline < 0 {
		return errors.New("flood: negative setting")
	}
	if c.Requests == 0 && c.Duration == 0 {
		c.Duration = 5 * time.Second
	}
	if c.InFlight == 0 {
		c.InFlight = 128
	}
	if c.Conns == 0 {
		c.Conns = max(4, len(c.Targets))
	}
	if c.Rate == 0 && c.InFlight < c.Conns {
		c.Conns = c.InFlight
	}
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	if c.NoRetries {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = 3
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Rate == 0 && c.InFlight/c.Conns > maxSlots {
		return fmt.Errorf("flood: at most %d in flight per connection", maxSlots)
	}
	return nil
}
