package udpserver

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// opLog is the per-operation console log. Workers append whole lines to a
// buffer under a short lock; a writer goroutine swaps the buffer out every
// flushInterval and writes it without holding the lock. A slow or stalled
// console therefore never blocks a worker: past maxBacklog waiting bytes,
// lines are dropped and counted instead, and the server says so. While
// there is nothing to write, the writer sleeps until a line comes: a quiet
// or idle server does not wake ten times a second for it.
type opLog struct {
	w      io.Writer
	logger *slog.Logger

	mu    sync.Mutex
	buf   []byte // whole lines waiting for the writer
	spare []byte // the writer's: the buffer it last wrote, reused

	dropped  atomic.Uint64 // lines dropped because the console fell behind
	reported uint64        // the writer's: drops already warned about
	wake     chan struct{} // lines came into an empty buffer; buffered, so that a worker never waits
	stop     chan struct{}
	done     chan struct{} // closed when the writer has written everything and ended
}

const flushInterval = 100 * time.Millisecond

// maxBacklog is how many bytes of log may wait for the console: about 20,000
// lines, two seconds of a busy server. A variable so that a test can shrink it.
var maxBacklog = 1 << 20

func newOpLog(w io.Writer, logger *slog.Logger) *opLog {
	return &opLog{w: w, logger: logger, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// write queues a batch of whole lines.
func (l *opLog) write(lines []byte) {
	l.mu.Lock()
	if len(l.buf)+len(lines) > maxBacklog {
		l.mu.Unlock()
		l.dropped.Add(uint64(bytes.Count(lines, []byte{'\n'})))
		l.wakeWriter() // the warning is the writer's to give
		return
	}
	first := len(l.buf) == 0
	l.buf = append(l.buf, lines...)
	l.mu.Unlock()
	if first {
		l.wakeWriter()
	}
}

func (l *opLog) wakeWriter() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run writes the log out until stopped, then writes what is left: it
// waits for lines, then for flushInterval, so that one write takes all
// that came meanwhile.
func (l *opLog) run() {
	defer close(l.done)
	t := time.NewTimer(flushInterval)
	t.Stop()
	for {
		select {
		case <-l.stop:
			l.flush()
			return
		case <-l.wake:
			t.Reset(flushInterval)
			select {
			case <-l.stop:
				l.flush()
				return
			case <-t.C:
			}
			l.flush()
		}
	}
}

func (l *opLog) flush() {
	l.mu.Lock()
	out := l.buf
	l.buf = l.spare[:0]
	l.mu.Unlock()
	if len(out) > 0 {
		_, _ = l.w.Write(out) // may block on a stalled console: only this goroutine waits
	}
	l.spare = out
	if d := l.dropped.Load(); d > l.reported {
		l.logger.Warn("udpserver: the console is not keeping up with the operation log; lines dropped",
			"dropped", d-l.reported, "total_dropped", d)
		l.reported = d
	}
}
