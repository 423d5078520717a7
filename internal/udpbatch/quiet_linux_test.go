package udpbatch

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// polledFDs lists the descriptors the runtime's epoll instances watch,
// from /proc/self/fdinfo.
func polledFDs(t *testing.T) map[int]bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	watched := map[int]bool{}
	for _, fd := range fds {
		if link, _ := os.Readlink("/proc/self/fd/" + fd.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		f, err := os.Open("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// "tfd:        7 events:       19 data: ..."
			if fields := strings.Fields(sc.Text()); len(fields) > 1 && fields[0] == "tfd:" {
				n, _ := strconv.Atoi(fields[1])
				watched[n] = true
			}
		}
		f.Close()
	}
	return watched
}

// TestQuietNotPolled: the runtime's poller watches an ordinary socket, so
// that each datagram that comes wakes it, and not a Quiet one, which is
// the point of it.
func TestQuietNotPolled(t *testing.T) {
	q, plain := listenQuiet(t, "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	raw, err := plain.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var plainFD int
	_ = raw.Control(func(fd uintptr) { plainFD = int(fd) })
	quietFD := int(q.sock.Fd())
	watched := polledFDs(t)
	if !watched[plainFD] {
		t.Fatalf("the ordinary socket (fd %d) is not among the watched descriptors %v: the check cannot see the poller", plainFD, watched)
	}
	if watched[quietFD] {
		t.Errorf("the Quiet socket (fd %d) is watched by the runtime's poller", quietFD)
	}
}
