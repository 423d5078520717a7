package udpserver

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/resolve"
	"github.com/discal/discal/internal/udpbatch"
)

// joiner announces the server to the proxies of Config.Join: a
// codec.KindJoin datagram from the status port to each proxy's client port
// every JoinInterval. The proxy adds the server (its status address is the
// join's source, its calculator port the one announced) and acknowledges;
// it drops a server that stops answering polls, and the next announcement
// brings it back. Announcing again and again, rather than once, is what
// lets a restarted proxy learn its servers without anyone's help.
//
// mu guards the proxies' state, which the status port's reader changes for
// every ack. It is held for memory only: names are looked up, joins sent
// and lines logged after it is released, so that a slow DNS server, a full
// socket buffer or a slow log never holds up status replies.
type joiner struct {
	s       *Server
	now     chan struct{} // asks for a round at once (Rejoin)
	mu      sync.Mutex
	proxies []*joinTarget
}

// joinTarget is one proxy and how its joins are going.
type joinTarget struct {
	name    string // as given: a host name is looked up each round
	id      uint64 // the join awaiting an ack, 0 when none
	joined  bool   // acked lately: logged when it turns
	unacked int    // rounds in a row without an ack
	warned  bool
}

func newJoiner(s *Server) *joiner {
	j := &joiner{s: s, now: make(chan struct{}, 1)}
	for _, p := range s.cfg.Join {
		j.proxies = append(j.proxies, &joinTarget{name: p})
	}
	return j
}

// run announces from conn, the status port's socket, until ctx ends.
func (j *joiner) run(ctx context.Context, conn net.PacketConn, calcPort uint16) {
	t := time.NewTicker(j.s.cfg.JoinInterval)
	defer t.Stop()
	buf := make([]byte, 0, codec.MaxDatagram)
	for {
		j.round(ctx, conn, calcPort, buf)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-j.now:
		}
	}
}

// Rejoin makes the server look its Config.Join proxies up and announce
// itself to them now, rather than at the next JoinInterval (the daemon does
// it on SIGHUP). It does nothing without Config.Join and never waits.
func (s *Server) Rejoin() {
	if s.joiner == nil {
		return
	}
	select {
	case s.joiner.now <- struct{}{}:
	default: // one is already asked for
	}
}

// lostAfter is how many announcements in a row may go unacknowledged before
// the server says so in its log.
const lostAfter = 3

// joinSend is one join a round decided to send, and what it logs.
type joinSend struct {
	to   netip.AddrPort
	id   uint64
	warn []any // key/value pairs of a warning to log, nil for none
	msg  string
}

// round sends one join to every proxy: it looks the names up, decides
// under the lock, then sends and logs.
func (j *joiner) round(ctx context.Context, conn net.PacketConn, calcPort uint16, buf []byte) {
	name := j.s.Name()
	addrs := make([]netip.AddrPort, len(j.proxies))
	errs := make([]error, len(j.proxies))
	for i, p := range j.proxies { // p.name never changes
		addrs[i], errs[i] = resolve.HostPort(ctx, nil, p.name)
	}
	sends := make([]joinSend, len(j.proxies))
	j.mu.Lock()
	for i, p := range j.proxies {
		sends[i] = p.next(addrs[i], errs[i])
	}
	j.mu.Unlock()
	log := j.s.cfg.Logger
	for _, js := range sends {
		if js.warn != nil {
			log.Warn(js.msg, append([]any{"name", name}, js.warn...)...)
		}
		if js.id != 0 {
			buf = codec.AppendJoin(buf[:0], js.id, codec.Join{CalcPort: calcPort, Name: name})
			if j.s.auth != nil {
				buf = j.s.auth.Seal(buf, time.Now())
			}
			_ = udpbatch.WriteTo(conn, buf, js.to)
		}
	}
}

// next moves p to its next round, with the proxy's address or the error
// looking it up gave, and says what to send and log. Called with the
// joiner's lock held: it only reads and writes p.
func (p *joinTarget) next(addr netip.AddrPort, err error) joinSend {
	var js joinSend
	if p.id != 0 { // the previous join got no ack
		p.unacked++
		if p.unacked >= lostAfter && (p.joined || !p.warned) {
			js.msg = "udpserver: no answer to join: is the proxy running, with -join-allow covering this host?"
			js.warn = []any{"proxy", p.name, "unanswered", p.unacked}
			p.joined, p.warned = false, true
		}
	}
	if err != nil {
		if !p.warned {
			js.msg = "udpserver: cannot resolve the proxy to join"
			js.warn = []any{"proxy", p.name, "err", err}
			p.warned = true
		}
		p.id = 0
		return js
	}
	p.id = rand.Uint64() | 1 // never 0, which means "none awaited"
	js.to, js.id = addr, p.id
	return js
}

// ack takes a proxy's acknowledgement; one that matches no join awaited is
// ignored. The ID alone, 64 random bits, says which proxy answered.
func (j *joiner) ack(id uint64) bool {
	var matched, first bool
	var proxy string
	j.mu.Lock()
	for _, p := range j.proxies {
		if p.id != 0 && p.id == id {
			p.id, p.unacked, p.warned = 0, 0, false
			matched, first, proxy = true, !p.joined, p.name
			p.joined = true
			break
		}
	}
	j.mu.Unlock()
	if first {
		j.s.cfg.Logger.Info("udpserver joined proxy", "name", j.s.Name(), "proxy", proxy)
	}
	return matched
}

// Joined reports, for each proxy of Config.Join, whether its last join was
// acknowledged within lostAfter rounds.
func (s *Server) Joined() map[string]bool {
	out := map[string]bool{}
	if s.joiner == nil {
		return out
	}
	s.joiner.mu.Lock()
	defer s.joiner.mu.Unlock()
	for _, p := range s.joiner.proxies {
		out[p.name] = p.joined
	}
	return out
}
