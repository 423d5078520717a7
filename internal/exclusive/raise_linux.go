package exclusive

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// raise sets the niceness of every thread of pid. Linux keeps a niceness
// per thread, and a new thread takes its creator's, so once every thread
// has it the whole process keeps it. A second pass catches a thread
// started, by one not yet raised, while the first went through the list.
func raise(pid, nice int) error {
	for range 2 {
		if err := raiseThreads(pid, nice); err != nil {
			return err
		}
	}
	return nil
}

func raiseThreads(pid, nice int) error {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return err
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		err = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
		if err != nil && !errors.Is(err, syscall.ESRCH) { // ESRCH: the thread has exited meanwhile
			return fmt.Errorf("setpriority: %w", err)
		}
	}
	return nil
}
