package udpproxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/lifecycle"
	"github.com/discal/discal/internal/udpbatch"
)

// Proxy is the discal load balancer. Create it with New, start it with Serve
// or ListenAndServe, stop it with Shutdown or Close.
//
// It is wired from parts that each own one concern: the membership (the
// server list, joins, DNS SRV: membership.go, discovery.go), the poller
// (status polls and canaries: poll.go), passive health (health.go), the
// policy that chooses (policy.go, score.go), the pending table
// (pending.go), and the loops that move datagrams (client.go,
// upstream.go, retry.go).
type Proxy struct {
	cfg     Config
	members *membership
	health  *health
	fleet   atomic.Pointer[fleet] // the fleet's figures, from the fleet loop
	pending *pendingTable
	limiter *limiter                // nil when there is no rate limit
	metrics atomic.Pointer[metrics] // nil unless Collector was called
	counters

	// Set once by Serve before any goroutine starts.
	client   *net.UDPConn
	upstream *net.UDPConn
	poll     *net.UDPConn

	life        lifecycle.Life     // Serve, Shutdown, Close
	mu          sync.Mutex         // guards the sockets and stop, for Addr and Shutdown
	stop        context.CancelFunc // ends the loops that outlive the client readers
	readersDone chan struct{}      // closed when the client readers have exited
}

// New returns a proxy for cfg, with defaults filled in and server addresses
// resolved.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, pending: newPendingTable(cfg.MaxPending), readersDone: make(chan struct{})}
	servers := make([]*Server, 0, len(cfg.Servers))
	for _, a := range cfg.Servers {
		s, err := newServer(a, cfg.Poll)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	if cfg.RateLimit > 0 {
		p.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	p.health = &health{maxFails: int32(cfg.MaxFails), ejectTime: cfg.EjectTime,
		maxEjectPct: cfg.MaxEjectPercent, log: cfg.Logger}
	p.members = newMembership(&p.cfg, &p.counters, p.health, servers)
	p.fleet.Store(newFleet(servers, nanotime()))
	return p, nil
}

func (p *Proxy) backends() []*Server { return p.members.servers() }

// ListenAndServe opens the client-facing port of the Config and serves it
// until Shutdown or Close.
func (p *Proxy) ListenAndServe() error {
	conn, err := net.ListenPacket("udp", p.cfg.Addr)
	if err != nil {
		return fmt.Errorf("udpproxy: %w", err)
	}
	return p.Serve(conn)
}

// Serve routes the requests that arrive on conn until Shutdown or Close; it
// then returns ErrServerClosed. conn must be a *net.UDPConn (ErrNotUDP
// otherwise): the proxy reads and writes it in batches. If conn fails or
// is closed under it, Serve stops everything and returns that error. It
// opens two sockets of its own, one to talk to the servers' calculator
// ports and one for status polls, and closes all three when it returns.
func (p *Proxy) Serve(conn net.PacketConn) error {
	client, ok := conn.(*net.UDPConn)
	if !ok {
		conn.Close()
		return ErrNotUDP
	}
	upstream, poll, err := listenOwn(p.cfg.UpstreamAddr)
	if err != nil {
		client.Close()
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	p.mu.Lock()
	p.client, p.upstream, p.poll, p.stop = client, upstream, poll, stop
	p.mu.Unlock()
	if !p.life.Start(func() { lifecycle.WakeReads(client) }) {
		stop()
		client.Close()
		upstream.Close()
		poll.Close()
		return ErrServerClosed
	}
	p.cfg.Logger.Info("udpproxy serving", "addr", client.LocalAddr().String(),
		"servers", len(p.backends()), "policy", p.cfg.Policy.String())

	var readers, background sync.WaitGroup
	for range p.cfg.Readers {
		readers.Go(func() { p.clientLoop(p.newWorker(client)) })
	}
	for range p.cfg.Readers {
		background.Go(func() { p.upstreamLoop(p.newWorker(upstream)) })
	}
	background.Go(func() { p.sweep(ctx) })
	pl := &poller{conn: poll, cfg: &p.cfg, members: p.members, health: p.health,
		drop: p.drops.add, load: newLoadModel()}
	background.Go(pl.read)
	background.Go(func() { p.fleetLoop(ctx, pl) })
	background.Go(func() { p.members.runJoins(ctx) })
	p.members.start(client, pl.forget)
	background.Go(func() { pl.run(ctx, seed()) })
	if p.cfg.SRV != "" {
		background.Go(func() { p.members.discover(ctx) })
	}

	readers.Wait() // the client side stops first, at Shutdown
	close(p.readersDone)
	if p.life.Err() != nil {
		// The client socket failed or was closed under the proxy: nothing
		// more can arrive, and no answer can leave. Stop now.
		stop()
	}
	<-ctx.Done() // then, once pending requests are done, the rest
	upstream.Close()
	poll.Close()
	background.Wait()
	client.Close()
	return p.life.Finish(ErrServerClosed)
}

// listenOwn opens the proxy's own two sockets, on ip (any address when
// unset): one to talk to the servers' calculator ports, one for status
// polls and canaries.
func listenOwn(ip netip.Addr) (upstream, poll *net.UDPConn, err error) {
	local := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))
	if !ip.IsValid() {
		local = &net.UDPAddr{}
	}
	if upstream, err = net.ListenUDP("udp", local); err != nil {
		return nil, nil, fmt.Errorf("udpproxy: upstream socket: %w", err)
	}
	if poll, err = net.ListenUDP("udp", local); err != nil {
		upstream.Close()
		return nil, nil, fmt.Errorf("udpproxy: poll socket: %w", err)
	}
	return upstream, poll, nil
}

// fleetLoop works out, every fleetEvery, what is about the whole fleet:
// the load model's cost and backgrounds, and the figures scores use.
func (p *Proxy) fleetLoop(ctx context.Context, pl *poller) {
	t := time.NewTicker(fleetEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pl.recompute()
			p.fleet.Store(newFleet(p.backends(), nanotime()))
		}
	}
}

// Shutdown stops taking requests, waits until every pending request has
// been answered or has expired (which its timeouts bound), then stops. If
// ctx ends first, it stops at once and returns ctx.Err().
func (p *Proxy) Shutdown(ctx context.Context) error {
	if !p.life.Stop() {
		return nil // never served
	}
	var err error
	// A reader may be routing a batch it read just before the wake-up:
	// its requests are pending only once it is done, so count them then.
	select {
	case <-p.readersDone:
	case <-ctx.Done():
		err = ctx.Err()
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for err == nil && p.pending.Len() > 0 && p.life.Err() == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
		}
	}
	p.mu.Lock()
	stop := p.stop
	p.mu.Unlock()
	stop()
	<-p.life.Done()
	return err
}

// Close stops the proxy at once; pending requests get no answer.
func (p *Proxy) Close() error { return lifecycle.Close(p.Shutdown) }

// Rediscover makes the proxy look its SRV name up again now rather than at
// the next SRVInterval (the daemon does it on SIGHUP). It does nothing when
// no SRV name is configured, and never waits for the lookup.
func (p *Proxy) Rediscover() {
	select {
	case p.members.rediscover <- struct{}{}:
	default: // one is already asked for
	}
}

// Ready reports whether the proxy can route a request now: it is serving
// and at least one server is in rotation. reason says why not, in a few
// words, for a health endpoint. When ready, reason is empty unless the
// proxy is degraded: no server takes new work, and the fallback that
// rotationOf allows (draining servers, else ejected ones) answers in
// their place; it then starts "degraded: " and names them. A degraded
// proxy stays ready, since a fallback still answers and taking the proxy
// out of a load balancer would leave clients with no answer at all.
func (p *Proxy) Ready() (ok bool, reason string) {
	if !p.life.Serving() {
		return false, "not serving"
	}
	rot := p.members.rotation()
	if len(rot) == 0 {
		return false, "no server in rotation"
	}
	kind, names := "draining", ""
	for i, s := range rot {
		if s.takesWork() {
			return true, ""
		}
		if s.health.ejected.Load() {
			kind = "ejected"
		}
		switch {
		case i == 0:
			names = s.Name()
		case i < 3: // a probe's line stays short however many there are
			names += ", " + s.Name()
		}
	}
	if len(rot) > 3 {
		names += fmt.Sprintf(" and %d more", len(rot)-3)
	}
	return true, fmt.Sprintf("degraded: no server takes new work; serving as a fallback: %s (%s)", names, kind)
}

// Addr returns the client-facing address once Serve has started.
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil
	}
	return p.client.LocalAddr()
}

// batch is how many datagrams a reader takes per system call.
const batch = 64

// worker is one goroutine's batch context: its batch I/O, buffers and
// random source, reused for every datagram so that the hot path allocates
// nothing (the client and upstream loops read with it; the sweeper only
// writes). A worker handles a whole batch, then sends what it produced with one call
// per socket: datagrams to servers through toServers, to clients through
// toClients.
type worker struct {
	r         *udpbatch.Reader
	in        []udpbatch.Message
	servers   *udpbatch.Writer // the upstream socket
	clients   *udpbatch.Writer // the client-facing socket
	toServers []udpbatch.Message
	toClients []udpbatch.Message
	slab      []byte // a MaxDatagram slot per datagram of the batch, for what the worker writes itself
	rng       *mrand.Rand
	now       int64     // nanotime when the batch was read: one clock reading serves it all
	wall      time.Time // the same moment for the rate limiter, read only when there is one
	tmpl      entry     // a new request's entry, filled here and copied into the table
	choice    Choice    // what the policy sees, reused for every request
}

func (p *Proxy) newWorker(from *net.UDPConn) *worker {
	opt := udpbatch.Options{Batch: batch, MaxSize: codec.MaxDatagram}
	w := &worker{
		in:        make([]udpbatch.Message, batch),
		toServers: make([]udpbatch.Message, 0, batch),
		toClients: make([]udpbatch.Message, 0, batch),
		slab:      make([]byte, batch*codec.MaxDatagram),
		rng:       mrand.New(mrand.NewChaCha8(seed())),
	}
	w.choice.Rand = w.rng
	if from != nil {
		w.r = udpbatch.NewReader(from, opt)
	}
	if p.upstream != nil {
		w.servers = udpbatch.NewWriter(p.upstream, opt)
	}
	if p.client != nil {
		w.clients = udpbatch.NewWriter(p.client, opt)
	}
	return w
}

// slot returns the i-th scratch slot, empty, with room for one datagram.
func (w *worker) slot(i int) []byte {
	i %= batch
	return w.slab[i*codec.MaxDatagram : i*codec.MaxDatagram : (i+1)*codec.MaxDatagram]
}

// pick asks the policy for a server for a request read at w.now, passing
// over avoid if it can; nil when no server is in rotation.
func (p *Proxy) pick(w *worker, avoid *Server) *Server {
	rot := p.members.rotation()
	if len(rot) == 0 {
		return nil
	}
	c := &w.choice
	c.Servers, c.Avoid, c.now, c.fleet = rot, avoid, w.now, p.fleet.Load()
	s := p.cfg.Policy.Pick(c)
	c.Servers, c.Avoid = nil, nil // hold no server past the choice
	return s
}

func (w *worker) toServer(pkt []byte, b *Server) {
	w.toServers = append(w.toServers, udpbatch.Message{Buf: pkt, Addr: b.calc})
}

func (w *worker) toClient(pkt []byte, client netip.AddrPort) {
	w.toClients = append(w.toClients, udpbatch.Message{Buf: pkt, Addr: client})
}

// flush sends what the batch produced.
func (w *worker) flush() {
	if len(w.toServers) > 0 {
		_, _ = w.servers.WriteBatch(w.toServers)
		w.toServers = w.toServers[:0]
	}
	if len(w.toClients) > 0 {
		_, _ = w.clients.WriteBatch(w.toClients)
		w.toClients = w.toClients[:0]
	}
}

// seed returns 32 bytes from the operating system's CSPRNG. Request IDs are
// drawn from ChaCha8 streams seeded this way, so they cannot be guessed from
// the IDs an attacker sees.
func seed() [32]byte {
	var s [32]byte
	_, _ = rand.Read(s[:]) // crypto/rand.Read never fails on supported systems
	return s
}

// clock is monotonic nanoseconds since the process started, for deadlines.
var epoch = time.Now()

func nanotime() int64 { return int64(time.Since(epoch)) }

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
