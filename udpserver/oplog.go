package udpserver

import (
	"bufio"
	"context"
	"io"
	"sync"
	"time"
)

// opLog is the per-operation console log. Lines go into one large buffer
// under a mutex, a memory copy per operation, and a flusher writes the
// buffer out every flushInterval, so that a slow terminal costs one write
// per interval rather than one per request.
type opLog struct {
	mu sync.Mutex
	w  *bufio.Writer
}

const flushInterval = 100 * time.Millisecond

func newOpLog(w io.Writer) *opLog {
	return &opLog{w: bufio.NewWriterSize(w, 64<<10)}
}

func (l *opLog) write(line []byte) {
	l.mu.Lock()
	_, _ = l.w.Write(line)
	l.mu.Unlock()
}

func (l *opLog) flush() {
	l.mu.Lock()
	_ = l.w.Flush()
	l.mu.Unlock()
}

func (l *opLog) run(ctx context.Context) {
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush()
			return
		case <-t.C:
			l.flush()
		}
	}
}
