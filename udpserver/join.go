package udpserver

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/discal/discal/codec"
)

// joiner announces the server to the proxies of Config.Join: a
// codec.KindJoin datagram from the status port to each proxy's client port
// every JoinInterval. The proxy adds the server (its status address is the
// join's source, its calculator port the one announced) and acknowledges;
// it drops a server that stops answering polls, and the next announcement
// brings it back. Announcing again and again, rather than once, is what
// lets a restarted proxy learn its servers without anyone's help.
type joiner struct {
	s       *Server
	mu      sync.Mutex
	conn    *net.UDPConn // the status port's socket, once serving
	port    uint16       // the calculator port announced
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
	j := &joiner{s: s}
	for _, p := range s.cfg.Join {
		j.proxies = append(j.proxies, &joinTarget{name: p})
	}
	return j
}

// run announces from conn, the status port's socket, until ctx ends.
func (j *joiner) run(ctx context.Context, conn *net.UDPConn, calcPort uint16) {
	j.mu.Lock()
	j.conn, j.port = conn, calcPort
	j.mu.Unlock()
	t := time.NewTicker(j.s.cfg.JoinInterval)
	defer t.Stop()
	buf := make([]byte, 0, codec.MaxDatagram)
	for {
		j.round(ctx, buf)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lostAfter is how many announcements in a row may go unacknowledged before
// the server says so in its log.
const lostAfter = 3

// lookupTimeout bounds the lookup of a proxy's name.
const lookupTimeout = 2 * time.Second

// round sends one join to every proxy. Names are looked up without the
// lock, which the status port's reader takes for every ack: a slow DNS
// server must not hold up status replies.
func (j *joiner) round(ctx context.Context, buf []byte) {
	log := j.s.cfg.Logger
	name := j.s.Name()
	addrs := make([]netip.AddrPort, len(j.proxies))
	errs := make([]error, len(j.proxies))
	for i, p := range j.proxies { // p.name never changes
		addrs[i], errs[i] = resolve(ctx, p.name)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, p := range j.proxies {
		if p.id != 0 { // the previous join got no ack
			p.unacked++
			if p.unacked >= lostAfter && (p.joined || !p.warned) {
				log.Warn("udpserver: no answer to join: is the proxy running, with -join-allow covering this host?",
					"name", name, "proxy", p.name, "unanswered", p.unacked)
				p.joined, p.warned = false, true
			}
		}
		if errs[i] != nil {
			if !p.warned {
				log.Warn("udpserver: cannot resolve the proxy to join", "name", name, "proxy", p.name, "err", errs[i])
				p.warned = true
			}
			p.id = 0
			continue
		}
		p.id = rand.Uint64() | 1 // never 0, which means "none awaited"
		buf = codec.AppendJoin(buf[:0], p.id, codec.Join{CalcPort: j.port, Name: name})
		_, _ = j.conn.WriteToUDPAddrPort(buf, addrs[i])
	}
}

// resolve looks up a host:port, within lookupTimeout.
func resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	// IPv4 first, as net.ResolveUDPAddr chooses.
	k := max(slices.IndexFunc(ips, func(a netip.Addr) bool { return a.Unmap().Is4() }), 0)
	return netip.AddrPortFrom(ips[k].Unmap(), uint16(pn)), nil
}

// ack takes a proxy's acknowledgement; one that matches no join awaited is
// ignored. The ID alone, 64 random bits, says which proxy answered.
func (j *joiner) ack(id uint64) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range j.proxies {
		if p.id != 0 && p.id == id {
			p.id, p.unacked, p.warned = 0, 0, false
			if !p.joined {
				p.joined = true
				j.s.cfg.Logger.Info("udpserver joined proxy", "name", j.s.Name(), "proxy", p.name)
			}
			return true
		}
	}
	return false
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
