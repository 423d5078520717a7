//go:build !linux

package flood

import "time"

// sleeper is time.Sleep where no more precise wait is at hand.
type sleeper struct{}

func newSleeper() *sleeper             { return &sleeper{} }
func (*sleeper) sleep(d time.Duration) { time.Sleep(d) }
func (*sleeper) close()                {}
