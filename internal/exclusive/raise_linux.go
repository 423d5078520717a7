package exclusive

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// raise sets the niceness of every thread of pid. Linux keeps a niceness
// per thread, and a new thread takes its creator's, so once every thread
// has it the whole process keeps it. A thread being created while the
// passes run copies its creator's niceness before the creator is raised
// and shows in /proc a moment later (a Go runtime starts threads on its
// own, for example when a goroutine locks one and blocks): TestRaise
// caught one in about 250 runs with two fixed passes. So passes go on
// until none has found a new thread for settle, within maxRaise.
func raise(pid, nice int) error {
	const (
		settle   = 2 * time.Millisecond
		pause    = 250 * time.Microsecond
		maxRaise = time.Second
	)
	raised := map[int]bool{}
	begin := time.Now()
	lastNew := begin
	for {
		fresh, err := raiseThreads(pid, nice, raised)
		if err != nil {
			return err
		}
		now := time.Now()
		if fresh > 0 {
			lastNew = now
		}
		switch {
		case now.Sub(lastNew) >= settle:
			return nil
		case now.Sub(begin) >= maxRaise:
			return fmt.Errorf("pid %d kept starting threads for %v", pid, maxRaise)
		}
		time.Sleep(pause)
	}
}

// raiseThreads raises the threads of pid not yet in raised, adds them to
// it and says how many it raised.
func raiseThreads(pid, nice int, raised map[int]bool) (int, error) {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return 0, err
	}
	fresh := 0
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil || raised[tid] {
			continue
		}
		err = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
		if err != nil && !errors.Is(err, syscall.ESRCH) { // ESRCH: the thread has exited meanwhile
			return 0, fmt.Errorf("setpriority: %w", err)
		}
		raised[tid] = true
		fresh++
	}
	return fresh, nil
}
