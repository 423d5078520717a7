package udpclient

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
)

// Config configures a Client. The zero value of every field means its
// default.
type Config struct {
	// Timeout is how long the first try waits for an answer. Each retry
	// waits twice as long as the one before, up to 4×Timeout. Default 1s.
	Timeout time.Duration
	// Retries is how many times a request is sent again, with the same ID,
	// after the first try. Default 3; set NoRetries for none.
	Retries int
	// NoRetries sends each request once.
	NoRetries bool
}

func (c *Config) fill() {
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.NoRetries {
		c.Retries = 0
	} else if c.Retries <= 0 {
		c.Retries = 3
	}
}

// Client sends requests to discal: a proxy, several proxies, or a server's
// calculator port. It is safe for concurrent use.
//
// With several proxies, it sends to one at a time, the first at the start.
// A try that gets no answer, or only a transient error ("timeout", "no
// server available", "busy"), is retried at the next proxy, and later
// requests go there too: a client stays with a proxy that answers and
// moves on from one that does not.
type Client struct {
	cfg   Config
	conns []*net.UDPConn // one connected socket per proxy
	cur   atomic.Int32   // the proxy new tries go to

	mu     sync.Mutex
	calls  map[uint64]*call
	closed bool

	nextID  atomic.Uint64
	ignored atomic.Uint64 // replies that matched no waiting call
	readers sync.WaitGroup
	done    chan struct{} // closed when Close has begun
}

// call is one request waiting for its answer. Calls are pooled; the reader
// delivers to a call only while it is registered, under c.mu.
type call struct {
	ch chan delivery
}

// delivery is a reply and the proxy it came from (an index into conns).
type delivery struct {
	r    codec.Reply
	from int32
}

var calls = sync.Pool{New: func() any { return &call{ch: make(chan delivery, 1)} }}

// Dial returns a client for the endpoint at addr, or for several proxies
// given as a comma-separated list ("10.0.0.5:7000,10.0.0.6:7000"), in the
// order to try them.
func Dial(addr string, cfg Config) (*Client, error) {
	cfg.fill()
	c := &Client{cfg: cfg, calls: make(map[uint64]*call), done: make(chan struct{})}
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		ra, err := net.ResolveUDPAddr("udp", a)
		if err == nil {
			// A connected socket: the kernel passes up only datagrams
			// from this proxy, and reads and writes need no address.
			var conn *net.UDPConn
			if conn, err = net.DialUDP("udp", nil, ra); err == nil {
				c.conns = append(c.conns, conn)
				continue
			}
		}
		for _, conn := range c.conns {
			conn.Close()
		}
		return nil, fmt.Errorf("udpclient: %w", err)
	}
	if len(c.conns) == 0 {
		return nil, fmt.Errorf("udpclient: no address in %q", addr)
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	c.nextID.Store(binary.LittleEndian.Uint64(seed[:]))
	for i, conn := range c.conns {
		c.readers.Go(func() { c.read(conn, int32(i)) })
	}
	return c, nil
}

// LocalAddr returns the client's own address, the one it uses for its
// first proxy.
func (c *Client) LocalAddr() net.Addr { return c.conns[0].LocalAddr() }

// Proxy returns the address new requests go to now.
func (c *Client) Proxy() string { return c.conns[c.cur.Load()].RemoteAddr().String() }

// failed moves new tries on from proxy i, unless another call has already.
func (c *Client) failed(i int32) {
	c.cur.CompareAndSwap(i, (i+1)%int32(len(c.conns)))
}

// Ignored returns how many replies matched no waiting call: duplicates,
// answers to retransmissions already answered, and late ones.
func (c *Client) Ignored() uint64 { return c.ignored.Load() }

// Close closes the sockets; calls still waiting return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	c.readers.Wait()
	return errors.Join(errs...)
}

// Calc computes a op b and returns the result, or the calculation's error
// as a *codec.Error.
func (c *Client) Calc(ctx context.Context, op codec.Op, a, b codec.Number) (codec.Number, error) {
	r, err := c.Do(ctx, codec.Request{Op: op, A: a, B: b})
	if err != nil {
		return codec.Number{}, err
	}
	return r.Result, nil
}

// Do sends a request and waits for its reply, retransmitting it with the
// same ID when no answer comes in time. A reply carrying an error returns
// that error too. A transient error from the proxy ("timeout", "no server
// available", "busy") ends the try: the request is sent again after a
// pause of a quarter of Timeout, and if that was the last try, the error
// matches both ErrNoAnswer and the proxy's *codec.Error.
func (c *Client) Do(ctx context.Context, req codec.Request) (codec.Reply, error) {
	id := c.nextID.Add(1)
	var buf [codec.MaxDatagram]byte
	pkt := codec.AppendRequest(buf[:0], id, req)
	return c.exchange(ctx, id, pkt)
}

func (c *Client) exchange(ctx context.Context, id uint64, pkt []byte) (codec.Reply, error) {
	cl := calls.Get().(*call)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		calls.Put(cl)
		return codec.Reply{}, ErrClosed
	}
	c.calls[id] = cl
	c.mu.Unlock()
	defer c.forget(id, cl)

	wait := c.cfg.Timeout
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var transient *codec.Error
	for try := 0; ; try++ {
		// A failed send is handled like a lost datagram: the timer retries.
		at := c.cur.Load()
		_, _ = c.conns[at].Write(pkt)
		d, res, err := c.await(ctx, cl, timer)
		switch res {
		case answered:
			return d.r, err
		case transientError:
			transient = d.r.Err
			at = d.from // the proxy that gave up, which may be an earlier one
		}
		if len(c.conns) > 1 {
			c.failed(at) // the retry, and new requests, go to the next proxy
		}
		if try >= c.cfg.Retries {
			if transient != nil {
				return codec.Reply{Err: transient}, fmt.Errorf("%w: %w", ErrNoAnswer, transient)
			}
			return codec.Reply{}, ErrNoAnswer
		}
		if res == transientError {
			// The proxy has given up on this try and said so. Pause a
			// little before asking again, so that "no server available"
			// is not asked again at once, but listen meanwhile: an answer
			// to an earlier transmission still counts.
			timer.Reset(min(wait, c.cfg.Timeout/4))
			for res == transientError {
				if d, res, err = c.await(ctx, cl, timer); res == answered {
					return d.r, err
				}
			}
		}
		wait = min(2*wait, 4*c.cfg.Timeout)
		timer.Reset(wait) // since Go 1.23, Reset needs no Stop and drain first
	}
}

// awaitResult says how a wait for an answer ended.
type awaitResult int

const (
	answered       awaitResult = iota // a result, an error, or the call cannot go on
	timedOut                          // the timer fired
	transientError                    // the proxy answered with a transient error
)

// await waits for the call's answer until the timer fires.
func (c *Client) await(ctx context.Context, cl *call, timer *time.Timer) (delivery, awaitResult, error) {
	select {
	case <-ctx.Done():
		return delivery{}, answered, ctx.Err()
	case <-c.done:
		return delivery{}, answered, ErrClosed
	case <-timer.C:
		return delivery{}, timedOut, nil
	case d := <-cl.ch:
		switch {
		case d.r.Err == nil:
			return d, answered, nil
		case d.r.Err.Code.Transient():
			return d, transientError, nil
		}
		return d, answered, d.r.Err
	}
}

// forget unregisters a call and returns it to the pool, emptied.
func (c *Client) forget(id uint64, cl *call) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
	select {
	case <-cl.ch:
		c.ignored.Add(1) // a duplicate delivered after the answer was taken
	default:
	}
	calls.Put(cl)
}

// read delivers replies from one proxy to their calls until the socket
// closes. An answer from any proxy ends a call: a retry at the next proxy
// may still be answered by the one before.
func (c *Client) read(conn *net.UDPConn, from int32) {
	buf := make([]byte, codec.MaxDatagram+1)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return
			}
			// Connection refused and the like: the retry timer covers it.
			continue
		}
		h, err := codec.ParseHeader(buf[:n])
		if err != nil || h.Kind != codec.KindReply {
			c.ignored.Add(1)
			continue
		}
		c.mu.Lock()
		cl := c.calls[h.ID]
		c.mu.Unlock()
		if cl == nil {
			c.ignored.Add(1)
			continue
		}
		r, err := codec.DecodeReply(buf[codec.HeaderSize:n])
		if err != nil {
			// Not an answer we can use; the retry timer will ask again.
			c.ignored.Add(1)
			continue
		}
		c.mu.Lock()
		if c.calls[h.ID] == cl {
			select {
			case cl.ch <- delivery{r, from}:
			default:
				c.ignored.Add(1) // a duplicate of an answer not yet taken
			}
		} else {
			c.ignored.Add(1)
		}
		c.mu.Unlock()
	}
}
