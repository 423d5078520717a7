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
	"syscall"
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
	// after the first try. Default (0) DefaultRetries; NoRetries (any
	// negative value) sends each request once.
	Retries int
}

// DefaultRetries is Config.Retries' default.
const DefaultRetries = 3

// NoRetries, as Config.Retries, sends each request once: 0 means the
// default, as for every field of Config.
const NoRetries = -1

func (c *Config) fill() {
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	switch {
	case c.Retries < 0:
		c.Retries = 0
	case c.Retries == 0:
		c.Retries = DefaultRetries
	}
}

// Client sends requests to discal: a proxy, several proxies, or a server's
// calculator port. It is safe for concurrent use.
//
// With several proxies, it sends to one at a time, the first at the start.
// A try that gets no answer, only a transient error ("timeout", "no server
// available", "busy"), or a refusal from the network (nothing listens at
// that address) is retried at the next proxy, and later requests go there
// too: a client stays with a proxy that answers and moves on from one that
// does not.
type Client struct {
	cfg   Config
	conns []*net.UDPConn // one connected socket per proxy
	addrs []string       // their addresses, as answers and errors name them
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
	at atomic.Int32 // the proxy the latest try went to, for refusals
}

// delivery is a reply and the proxy it came from (an index into conns), or
// the news that the proxy's host refused the try.
type delivery struct {
	r       codec.Reply
	from    int32
	refused bool
}

var calls = sync.Pool{New: func() any { return &call{ch: make(chan delivery, 1)} }}

// Dial returns a client for the endpoint at addr, or for several proxies
// given as a comma-separated list ("10.0.0.5:7000,10.0.0.6:7000"), in the
// order to try them. It is DialContext without a context.
func Dial(addr string, cfg Config) (*Client, error) {
	var addrs []string
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("udpclient: no address in %q", addr)
	}
	return DialContext(context.Background(), addrs, cfg)
}

// DialContext returns a client for the proxies at addrs ("host:port"), in
// the order to try them. ctx bounds the name lookups; once the client is
// returned, it no longer matters. Nothing is sent yet: a proxy that is not
// there shows itself on the first request.
func DialContext(ctx context.Context, addrs []string, cfg Config) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("udpclient: no address")
	}
	cfg.fill()
	c := &Client{cfg: cfg, calls: make(map[uint64]*call), done: make(chan struct{})}
	var d net.Dialer
	for _, a := range addrs {
		// A connected socket: the kernel passes up only datagrams from
		// this proxy, reads and writes need no address, and an ICMP "port
		// unreachable" comes back as a refused read or write.
		conn, err := d.DialContext(ctx, "udp", a)
		if err != nil {
			for _, conn := range c.conns {
				conn.Close()
			}
			return nil, fmt.Errorf("udpclient: %w", err)
		}
		c.conns = append(c.conns, conn.(*net.UDPConn))
		c.addrs = append(c.addrs, conn.RemoteAddr().String())
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
func (c *Client) Proxy() string { return c.proxy(c.cur.Load()) }

func (c *Client) proxy(i int32) string { return c.addrs[i] }

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

// forget unregisters a call and returns it to the pool, emptied.
func (c *Client) forget(id uint64, cl *call) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
	select {
	case d := <-cl.ch:
		if !d.refused {
			c.ignored.Add(1) // a duplicate delivered after the answer was taken
		}
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
			if errors.Is(err, syscall.ECONNREFUSED) {
				c.refused(from)
			}
			// Other errors are handled like lost datagrams: the retry
			// timer covers them.
			continue
		}
		c.deliver(buf[:n], from)
	}
}

// deliver hands one datagram from proxy from to the call it answers.
func (c *Client) deliver(pkt []byte, from int32) {
	h, err := codec.ParseHeader(pkt)
	if err != nil || h.Kind != codec.KindReply {
		c.ignored.Add(1)
		return
	}
	c.mu.Lock()
	cl := c.calls[h.ID]
	c.mu.Unlock()
	if cl == nil {
		c.ignored.Add(1)
		return
	}
	r, err := codec.DecodeReply(pkt[codec.HeaderSize:])
	if err != nil {
		// Not an answer we can use; the retry timer will ask again.
		c.ignored.Add(1)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls[h.ID] != cl {
		c.ignored.Add(1)
		return
	}
	select {
	case cl.ch <- delivery{r: r, from: from}:
	default:
		c.ignored.Add(1) // a duplicate of an answer not yet taken
	}
}

// refused tells every call whose latest try went to proxy i that the
// network said nothing listens there. The kernel reports one ICMP error
// for the socket, not for a datagram, so each of those calls hears it.
func (c *Client) refused(i int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.calls {
		if cl.at.Load() != i {
			continue
		}
		select {
		case cl.ch <- delivery{from: i, refused: true}:
		default: // an answer is already waiting
		}
	}
}
