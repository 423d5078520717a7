package udpproxy

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discal/discal/internal/lifecycle"
	"github.com/discal/discal/internal/netlist"
)

// Proxy is the discal load balancer. Create it with New, start it with Serve
// or ListenAndServe, stop it with Shutdown or Close.
//
// It wires parts that each own one concern and the state that goes with
// it: the membership (the server list, its sources and every server's
// state: membership.go, join.go, discovery.go, by the rules of health.go),
// the poller (status polls, canaries, the load model and the fleet's
// figures: poll.go, load.go, score.go), and the router, which moves
// datagrams (worker.go, client.go, upstream.go, retry.go) through the
// pending table (pending.go), choosing servers by the policy (policy.go).
type Proxy struct {
	cfg      Config
	counters counters
	members  *membership
	poller   *poller
	router   router

	life        lifecycle.Life       // Serve, Shutdown, Close
	mu          sync.Mutex           // guards the sockets, stop and collector
	client      net.PacketConn       // set by Serve, for Addr
	upstream    net.PacketConn       // likewise
	stop        context.CancelFunc   // ends the loops that outlive the client readers
	collector   prometheus.Collector // made by the first call to Collector
	readersDone chan struct{}        // closed when the client readers have exited
}

// New returns a proxy for cfg, with defaults filled in and server addresses
// resolved.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	servers := make([]*Server, 0, len(cfg.Servers))
	for _, a := range cfg.Servers {
		s, err := newServer(a, cfg.Poll)
		if err != nil {
			return nil, err
		}
		for _, o := range servers {
			if netlist.SameAddrPort(o.calc, s.calc) {
				// One calculator address is one server: two entries
				// would split its load between two reports.
				return nil, fmt.Errorf("udpproxy: servers %s and %s have one calculator address", o.addr, a)
			}
		}
		servers = append(servers, s)
	}
	p := &Proxy{cfg: cfg, readersDone: make(chan struct{})}
	p.members = newMembership(&p.cfg, &p.counters, servers)
	p.poller = newPoller(&p.cfg, p.members, &p.counters)
	p.router = router{cfg: &p.cfg, members: p.members, poller: p.poller, counters: &p.counters,
		pending: newPendingTable(cfg.MaxPending), life: &p.life}
	p.router.sweeps.every = int64(sweepEvery(&p.cfg))
	p.router.sweeps.budget = hedgeBudget{per: p.cfg.HedgeBudget / 100, tokens: hedgeBurst} // counts requests from the first
	p.router.sweeps.cands = make([]hedgeCandidate, 0, batch)
	if cfg.RateLimit > 0 {
		p.router.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	return p, nil
}

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
// then returns ErrServerClosed. Any net.PacketConn serves: a *net.UDPConn
// (what net.ListenPacket("udp", ...) returns) is read and written in
// batches, anything else one datagram at a time. If conn fails or is
// closed under it, Serve stops everything and returns that error. It opens
// two UDP sockets of its own, one to talk to the servers' calculator ports
// and one for status polls, and closes all three when it returns.
func (p *Proxy) Serve(conn net.PacketConn) error {
	upstream, poll, err := listenOwn(p.cfg.UpstreamAddr)
	if err != nil {
		conn.Close()
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	p.mu.Lock()
	p.upstream, p.stop = upstream, stop
	p.mu.Unlock()
	if !p.life.Start(func() { lifecycle.WakeReads(conn) }) {
		stop()
		conn.Close()
		upstream.Close()
		poll.Close()
		return ErrServerClosed
	}
	p.cfg.Logger.Info("udpproxy serving", "addr", conn.LocalAddr().String(),
		"servers", len(p.members.servers()), "policy", p.cfg.Policy.String())
	r := &p.router
	r.client, r.upstream = conn, upstream
	p.counters.rx.conn.Store(&socket{conn})
	p.poller.conn = poll
	p.members.start(conn)

	// Making a reader sets its socket up (UDP GRO on, a large receive
	// buffer), so Addr says where the proxy listens only once they are
	// made: what arrives from then on is read as it will be.
	clients := make([]*worker, p.cfg.Readers)
	for i := range clients {
		clients[i] = r.newWorker(conn)
	}
	p.mu.Lock()
	p.client = conn
	p.mu.Unlock()
	var readers, background sync.WaitGroup
	for _, w := range clients {
		readers.Go(func() { r.clientLoop(w) })
	}
	for range p.cfg.Readers {
		background.Go(func() { r.upstreamLoop(r.newWorker(upstream)) })
	}
	background.Go(func() { r.sweep(ctx) })
	background.Go(func() { p.poller.run(ctx, seed()) })
	background.Go(func() { p.members.runJoins(ctx) })
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
	conn.Close()
	return p.life.Finish(ErrServerClosed)
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
	for err == nil && p.router.pending.Len() > 0 && p.life.Err() == nil {
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
		if s.state.ejected.Load() {
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

// Addr returns the client-facing address once Serve has started and set
// its socket up, nil before.
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil
	}
	return p.client.LocalAddr()
}

// Stats returns the proxy's counters and the state of every server.
func (p *Proxy) Stats() Stats { return p.router.stats(p.members.snap.Load()) }

// Collector returns the proxy's metrics for a Prometheus registry. From
// the first call on, the proxy also times every reply.
func (p *Proxy) Collector() prometheus.Collector {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.collector == nil {
		h := newReplyHistogram()
		p.router.replyTimes.Store(&h)
		p.collector = newMetrics(p.Stats, h)
	}
	return p.collector
}
