package exclusive

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// threads is a process for TestRaise: on each line of its standard input
// it starts newThreads OS threads (goroutines locked to threads that
// block) and answers "started"; it exits when its input ends.
func threads() int {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		for range newThreads {
			started := make(chan struct{})
			go func() {
				runtime.LockOSThread() // this goroutine's thread is its own from here
				close(started)
				select {} // held until the process exits
			}()
			<-started
		}
		fmt.Println("started")
	}
	return 0
}

const newThreads = 4

// maxBatches bounds TestRaise's batches: far more locked threads than a
// Go runtime keeps idle.
const maxBatches = 16

// newTIDs counts the threads in now that were not in before.
func newTIDs(before, now map[string]string) int {
	n := 0
	for tid := range now {
		if _, ok := before[tid]; !ok {
			n++
		}
	}
	return n
}

// niceness reads the niceness of each thread of pid.
func niceness(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, task := range tasks {
		stat, err := os.ReadFile(dir + task.Name() + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// Field 19 is the niceness; field 2, the name, may hold spaces
		// but ends at the last ')', before field 3.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		out[task.Name()] = strings.Fields(rest)[19-3]
	}
	return out
}

// TestRaise: every thread of a running Go process gets the raised
// niceness, and so do the threads it starts afterwards.
func TestRaise(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising a process needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EXCLUSIVE_THREADS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	out := bufio.NewScanner(stdout)
	start := func() {
		t.Helper()
		if _, err := fmt.Fprintln(stdin, "start"); err != nil || !out.Scan() || out.Text() != "started" {
			t.Fatalf("the process did not start its threads: %v, %q", err, out.Text())
		}
	}
	start()
	Raise(t, cmd.Process.Pid)
	before := niceness(t, cmd.Process.Pid)
	// A locked goroutine may take a thread the runtime already had idle,
	// so one batch need not make a new thread (CI saw 11 threads after 4
	// more on 8). Each locked thread is held for good, though, so the idle
	// ones run out: start batches until a thread appears that was not
	// there when the process was raised.
	var nice map[string]string
	for batch := 1; ; batch++ {
		start()
		nice = niceness(t, cmd.Process.Pid)
		if newTIDs(before, nice) > 0 {
			break
		}
		if batch == maxBatches {
			t.Fatalf("no new thread after %d locked goroutines; %d threads before, %d now",
				batch*newThreads, len(before), len(nice))
		}
	}
	for tid, n := range nice {
		if n != strconv.Itoa(raisedNice) {
			_, old := before[tid]
			t.Errorf("thread %s (there when raised: %v) has niceness %s, want %d", tid, old, n, raisedNice)
		}
	}
}
