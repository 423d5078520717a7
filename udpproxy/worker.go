package udpproxy

import (
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/lifecycle"
	"github.com/discal/discal/internal/udpbatch"
)

// router moves datagrams. The loops that read clients' requests
// (client.go) and servers' replies (upstream.go), and the sweeper that
// expires and retries tries (retry.go), are its methods, each goroutine
// with a worker of its own. It owns the pending table and is the one
// writer of the servers' traffic fields; for a choice it reads the
// membership's rotation and the poller's fleet figures, and it tells the
// membership which tries went unanswered.
type router struct {
	cfg     *Config
	members *membership
	poller  *poller
	pending *pendingTable
	limiter *limiter // nil when there is no rate limit
	life    *lifecycle.Life
	*counters

	// Set once by Serve before any loop starts.
	client, upstream net.PacketConn

	sweeps sweeps // the passes that expire and hedge tries (retry.go)

	// replyTimes, once metrics are asked for (metrics.go), times every
	// reply; nil until then, so that the hot path does not pay for it.
	replyTimes atomic.Pointer[prometheus.Histogram]
}

// worker is one goroutine's batch context: its batch I/O, buffers and
// random source, reused for every datagram so that the hot path allocates
// nothing (the client and upstream loops read with it; the sweeper only
// writes). A worker handles a whole batch, then sends what it produced with
// one call per socket: datagrams to servers through toServers, to clients
// through toClients.
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

// newWorker returns a worker that reads from (nil for none) and writes to
// the router's two sockets, those that Serve has set.
func (r *router) newWorker(from net.PacketConn) *worker {
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
		ro := opt
		if from == r.client {
			// What the kernel drops on the client socket (rx_overflow) it
			// counts in buffers: a datagram, or a client's GSO batch,
			// which GRO keeps whole. The buffers read are counted the
			// same way, so that the two add up to what arrived.
			ro.Buffers = &r.rx.buffers
		}
		w.r = udpbatch.NewReader(from, ro)
	}
	if r.upstream != nil {
		w.servers = udpbatch.NewWriter(r.upstream, opt)
	}
	if r.client != nil {
		w.clients = udpbatch.NewWriter(r.client, opt)
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
func (r *router) pick(w *worker, avoid *Server) *Server {
	rot := r.members.rotation()
	if len(rot) == 0 {
		return nil
	}
	c := &w.choice
	c.Servers, c.Avoid, c.now, c.fleet = rot, avoid, w.now, r.poller.fleet.Load()
	s := r.cfg.Policy.Pick(c)
	c.Servers, c.Avoid = nil, nil // hold no server past the choice
	return s
}

func (w *worker) toServer(pkt []byte, s *Server) {
	w.toServers = append(w.toServers, udpbatch.Message{Buf: pkt, Addr: s.calc})
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

// replyError queues an error of the proxy's own for the client o, in the
// form it used, encoded into buf, within the bound that its request sets
// (codec.AppendBounded).
func (w *worker) replyError(buf []byte, o origin, e *codec.Error) {
	w.toClient(codec.AppendBounded(buf[:0], int(o.size), o.text, o.id, codec.Reply{Err: e}), o.addr)
}

// send enters a try of a request in the table, for server s, and queues
// pkt, a copy of the request, with the try's ID. A first try is a copy of
// e, inserted if the table has room; a retry is e itself, which expiry
// took out of the table, reinserted. pkt must not be e's own request: once
// in the table, the entry may be taken and reused by the reply path at any
// moment.
func (r *router) send(w *worker, pkt []byte, e *entry, s *Server, retry bool) bool {
	e.server = s
	e.sentAt = w.now
	e.deadline = e.sentAt + int64(r.cfg.TryTimeout)
	s.traffic.inFlight.Add(1) // before the entry is visible, so a fast reply never takes it below zero
	var id uint64
	if retry {
		id = r.pending.reinsert(w.rng, e)
	} else {
		var ok bool
		if id, ok = r.pending.insert(w.rng, e); !ok {
			s.traffic.inFlight.Add(-1)
			return false
		}
	}
	s.traffic.sent.Add(1)
	codec.SetID(pkt, id)
	w.toServer(pkt, s)
	return true
}

// sweeps is the pass over the pending table that expires and hedges
// tries (retry.go), and what it keeps between passes. A pass is made by the sweeper
// goroutine, or by a reader that is awake anyway (maySweep), one at a time
// (mu): under load the readers make them as their batches come, and the
// sweeper, finding a pass made, sleeps on. Hedging needs a pass every
// hedgeTick, and a sweeper that woke for each itself cost the proxy 2%
// more CPU a request under the bench's GSO flood (3.65 against 3.57 µs,
// three runs of each, alternating).
type sweeps struct {
	mu     sync.Mutex
	every  int64        // nanoseconds between passes
	last   atomic.Int64 // nanotime of the last pass
	budget hedgeBudget
	cands  []hedgeCandidate
}
