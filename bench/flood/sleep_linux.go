//go:build linux

package flood

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper waits with microsecond precision. Go's timers wake about a
// millisecond late on an idle machine (the runtime's poller waits in whole
// milliseconds), and the open loop counts latency from each request's
// intended time, so that lateness would be charged to the system under
// test. A timerfd read through the runtime's poller wakes on time and, unlike
// a blocking nanosleep, holds no P while it waits.
type sleeper struct {
	fd  int
	f   *os.File
	buf [8]byte
}

func newSleeper() *sleeper {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return &sleeper{fd: -1}
	}
	return &sleeper{fd: fd, f: os.NewFile(uintptr(fd), "timerfd")}
}

func (s *sleeper) sleep(d time.Duration) {
	if s.fd < 0 || d <= 0 {
		time.Sleep(d)
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if unix.TimerfdSettime(s.fd, 0, &spec, nil) != nil {
		time.Sleep(d)
		return
	}
	_, _ = s.f.Read(s.buf[:])
}

func (s *sleeper) close() {
	if s.f != nil {
		s.f.Close()
	}
}
