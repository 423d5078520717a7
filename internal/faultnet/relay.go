// Package faultnet is a UDP relay that misbehaves on purpose: it drops,
// duplicates, reorders and delays datagrams at given rates, the way a real
// network can, so that tests and the bench can show what discal does about
// it. Its randomness is seeded, so a failure can be replayed.
//
// A Relay listens on one address and forwards to one target. Each client
// gets a socket of its own towards the target (as NAT would give it), so
// that the target sees, and answers, each client separately; answers come
// back through the same socket and relay to the client that sent.
//
//	r, _ := faultnet.Start(faultnet.Config{Target: proxyAddr,
//		Forward: faultnet.Faults{Loss: 0.1}, Backward: faultnet.Faults{Loss: 0.1}, Seed: 1})
//	defer r.Close()
//	// send to r.Addr() instead of proxyAddr
//
// Pause makes the link go dead both ways, while both ends carry on, until
// it is resumed.
package faultnet

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Faults describes what happens to datagrams going one way.
type Faults struct {
	Loss    float64       // probability a datagram is dropped
	Dup     float64       // probability a datagram is sent twice
	Reorder float64       // probability a datagram is held back behind later ones
	Delay   time.Duration // added to every datagram
	Jitter  time.Duration // a further random delay, uniform in [0, Jitter)
}

func (f Faults) validate() error {
	for _, p := range []float64{f.Loss, f.Dup, f.Reorder} {
		if p < 0 || p > 1 {
			return errors.New("faultnet: probabilities must lie in 0-1")
		}
	}
	if f.Delay < 0 || f.Jitter < 0 {
		return errors.New("faultnet: delays must not be negative")
	}
	return nil
}

// Config configures a Relay.
type Config struct {
	Listen   string // default 127.0.0.1:0
	Target   string // required
	Forward  Faults // client -> target
	Backward Faults // target -> client
	Seed     uint64 // default 1
}

// Stats counts what a Relay did, in each direction.
type Stats struct {
	Forwarded, Dropped, Duplicated, Reordered [2]uint64 // [0] forward, [1] backward
}

// Relay is a running fault-injecting relay.
type Relay struct {
	cfg    Config
	listen *net.UDPConn
	target *net.UDPAddr

	mu       sync.Mutex
	rng      *rand.Rand
	sessions map[netip.AddrPort]*session
	queue    delayQueue
	seq      uint64
	wake     chan struct{}
	closed   bool

	stats  [4][2]atomic.Uint64
	paused atomic.Bool // set by Pause
	wg     sync.WaitGroup
}

type session struct {
	client netip.AddrPort
	conn   *net.UDPConn // connected to the target
}

// Start begins relaying.
func Start(cfg Config) (*Relay, error) {
	if cfg.Target == "" {
		return nil, errors.New("faultnet: no target")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if err := cfg.Forward.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Backward.validate(); err != nil {
		return nil, err
	}
	target, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("faultnet: target: %w", err)
	}
	la, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("faultnet: listen: %w", err)
	}
	listen, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("faultnet: %w", err)
	}
	// Room for bursts: the relay should lose what it is told to, not
	// what a busy machine's full socket buffer drops.
	_ = listen.SetReadBuffer(socketBuffer)
	_ = listen.SetWriteBuffer(socketBuffer)
	r := &Relay{cfg: cfg, listen: listen, target: target,
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x6661756c74)),
		sessions: map[netip.AddrPort]*session{}, wake: make(chan struct{}, 1)}
	r.wg.Go(r.readClients)
	r.wg.Go(r.deliver)
	return r, nil
}

// Addr is where clients send instead of to the target.
func (r *Relay) Addr() *net.UDPAddr { return r.listen.LocalAddr().(*net.UDPAddr) }

// Stats returns the counts so far.
func (r *Relay) Stats() Stats {
	var s Stats
	for d := range 2 {
		s.Forwarded[d] = r.stats[0][d].Load()
		s.Dropped[d] = r.stats[1][d].Load()
		s.Duplicated[d] = r.stats[2][d].Load()
		s.Reordered[d] = r.stats[3][d].Load()
	}
	return s
}

// Pause stops the relay forwarding, both ways, until Pause(false): a link
// that goes dead and comes back, while the client and the target carry
// on. What arrives while it is paused is dropped, counted in Dropped;
// what was held back before (a Delay) is still delivered.
func (r *Relay) Pause(paused bool) { r.paused.Store(paused) }

// Close stops the relay; datagrams still held back are dropped.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	sessions := r.sessions
	r.mu.Unlock()
	err := r.listen.Close()
	for _, s := range sessions {
		s.conn.Close()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	r.wg.Wait()
	return err
}

const (
	forward  = 0
	backward = 1
)

// socketBuffer is the size asked for each socket's buffers (the kernel caps
// it at net.core.rmem_max and wmem_max).
const socketBuffer = 4 << 20

func (r *Relay) readClients() {
	buf := make([]byte, 65536)
	for {
		n, from, err := r.listen.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s, err := r.session(from)
		if err != nil {
			continue
		}
		r.inject(forward, append([]byte(nil), buf[:n]...), s)
	}
}

// session returns the client's socket towards the target, making it and
// its reader on first use.
func (r *Relay) session(client netip.AddrPort) (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, net.ErrClosed
	}
	if s, ok := r.sessions[client]; ok {
		return s, nil
	}
	conn, err := net.DialUDP("udp", nil, r.target)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(socketBuffer)
	_ = conn.SetWriteBuffer(socketBuffer)
	s := &session{client: client, conn: conn}
	r.sessions[client] = s
	r.wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP errors from a target that is down
			}
			r.inject(backward, append([]byte(nil), buf[:n]...), s)
		}
	})
	return s, nil
}

// inject applies the direction's faults to one datagram and queues what
// survives for delivery.
func (r *Relay) inject(dir int, pkt []byte, s *session) {
	f := r.cfg.Forward
	if dir == backward {
		f = r.cfg.Backward
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	// Paused, a datagram draws nothing from rng, so that those after the
	// pause meet the faults they would have met had it never come.
	if r.paused.Load() || r.rng.Float64() < f.Loss {
		r.stats[1][dir].Add(1)
		return
	}
	copies := 1
	if r.rng.Float64() < f.Dup {
		copies = 2
		r.stats[2][dir].Add(1)
	}
	now := time.Now()
	for range copies {
		at := now.Add(f.Delay)
		if f.Jitter > 0 {
			at = at.Add(time.Duration(r.rng.Int64N(int64(f.Jitter))))
		}
		if r.rng.Float64() < f.Reorder {
			// Held back long enough for later datagrams to pass it.
			at = at.Add(time.Millisecond + time.Duration(r.rng.Int64N(int64(5*time.Millisecond))))
			r.stats[3][dir].Add(1)
		}
		r.seq++
		heap.Push(&r.queue, item{at: at, seq: r.seq, dir: dir, pkt: pkt, s: s})
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// deliver sends each queued datagram when its time comes.
func (r *Relay) deliver() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		var due []item
		now := time.Now()
		for r.queue.Len() > 0 && !r.queue[0].at.After(now) {
			due = append(due, heap.Pop(&r.queue).(item))
		}
		wait := time.Hour
		if r.queue.Len() > 0 {
			wait = r.queue[0].at.Sub(now)
		}
		r.mu.Unlock()
		for _, it := range due {
			// Counted before it is sent: a reader that sees the
			// datagram arrive then never finds it missing from
			// Forwarded (counted after, a test that compared the two
			// caught the count one short).
			r.stats[0][it.dir].Add(1)
			if it.dir == forward {
				_, _ = it.s.conn.Write(it.pkt)
			} else {
				_, _ = r.listen.WriteToUDPAddrPort(it.pkt, it.s.client)
			}
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-r.wake:
		}
	}
}

type item struct {
	at  time.Time
	seq uint64 // keeps equal times in arrival order
	dir int
	pkt []byte
	s   *session
}

type delayQueue []item

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(item)) }
func (q *delayQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
