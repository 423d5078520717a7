package udpproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/discal/discal/internal/resolve"
)

// Discovery through DNS SRV records, the way Kubernetes (headless services)
// and Consul publish a service: each record names a host and a server's
// calculator port, and the status port is that port plus SRVStatusOffset.
// The name is looked up at start and every SRVInterval after; servers that
// appear are added, servers no longer listed removed. A lookup that fails
// (a timeout, a refused query) changes nothing: only an answer, even an
// empty one, says what the servers are.

// discover keeps the SRV servers in line with DNS until ctx ends. After a
// failed lookup it tries again sooner, a second later and then twice as
// long each time, up to SRVInterval: a proxy whose DNS was not ready when
// it started finds its servers soon after.
func (m *membership) discover(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	retry := time.Duration(0) // the wait after a failure; 0 while lookups work
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.rediscover:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		want, err := m.lookupSRV(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if retry == 0 {
				m.cfg.Logger.Warn("udpproxy: SRV lookup failed; keeping the servers found before", "name", m.cfg.SRV, "err", err)
				retry = time.Second / 2
			}
			retry = min(2*retry, m.cfg.SRVInterval)
			t.Reset(retry)
			continue
		case retry != 0:
			m.cfg.Logger.Info("udpproxy: SRV lookup works again", "name", m.cfg.SRV)
			retry = 0
		}
		m.applySRV(want)
		t.Reset(m.cfg.SRVInterval)
	}
}

// lookupTimeout bounds each DNS query of a lookup.
const lookupTimeout = 5 * time.Second

// lookupSRV returns the servers SRV lists now. A name that does not exist,
// or has no SRV records, is an answer: no servers. Each record's target
// counts once, at one address (IPv4 if it has one), so a dual-stack host
// is not two servers.
func (m *membership) lookupSRV(ctx context.Context) ([]srvTarget, error) {
	qctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	_, srvs, err := m.cfg.Resolver.LookupSRV(qctx, "", "", m.cfg.SRV)
	cancel()
	if err != nil {
		dnsErr, ok := errors.AsType[*net.DNSError](err)
		switch {
		case ok && dnsErr.IsNotFound:
			return nil, nil
		case len(srvs) == 0:
			return nil, err
		}
		// Records with invalid names were left out; the rest stand.
		if m.badSRVLog.AllowAt(nanotime()) {
			m.cfg.Logger.Warn("udpproxy: SRV answer has invalid records; using the rest", "name", m.cfg.SRV, "err", err)
		}
	}
	var out []srvTarget
	for _, srv := range srvs {
		status := int(srv.Port) + m.cfg.SRVStatusOffset
		if srv.Port == 0 || status <= 0 || status > 65535 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		ips, err := m.cfg.Resolver.LookupNetIP(qctx, "ip", srv.Target)
		cancel()
		if err != nil {
			if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && dnsErr.IsNotFound {
				continue // a record naming a host that is gone: no server
			}
			return nil, err
		}
		ip, ok := resolve.Pick(ips)
		if !ok {
			continue
		}
		a := ServerAddr{
			Calc:   netip.AddrPortFrom(ip, srv.Port).String(),
			Status: netip.AddrPortFrom(ip, uint16(status)).String(),
		}
		if !slices.ContainsFunc(out, func(t srvTarget) bool { return t.addr == a }) {
			out = append(out, srvTarget{addr: a, priority: srv.Priority, weight: srv.Weight})
		}
	}
	return out, nil
}

// srvTarget is one server an SRV answer lists, with its record's priority
// and weight (RFC 2782).
type srvTarget struct {
	addr     ServerAddr
	priority uint16
	weight   uint16
}

// applySRV makes the SRV servers in the list those in want, with want's
// priorities and weights.
func (m *membership) applySRV(want []srvTarget) {
	m.mu.Lock()
	var gone, added []*Server
	for _, s := range m.servers() {
		if s.source == fromSRV && !slices.ContainsFunc(want, func(t srvTarget) bool { return t.addr == s.addr }) && m.removeLocked(s) {
			gone = append(gone, s)
		}
	}
	full := false
	for _, t := range want {
		calc, err1 := netip.ParseAddrPort(t.addr.Calc)
		status, err2 := netip.ParseAddrPort(t.addr.Status)
		if err1 != nil || err2 != nil {
			continue
		}
		if s := m.listedCalc(calc); s != nil {
			if s.source == fromSRV {
				s.srv.Store(srvRank(t.priority, t.weight))
			}
			continue // known already, from any source: one calculator address is one server
		}
		s := newLearned(t.addr, calc, status, m.cfg.Poll, fromSRV)
		s.srv.Store(srvRank(t.priority, t.weight))
		if !m.addLocked(s) {
			full = true
			continue
		}
		added = append(added, s)
	}
	m.rotateLocked() // priorities may have moved
	m.mu.Unlock()
	for _, s := range gone {
		m.logRemoved(s, "no longer in DNS")
	}
	for _, s := range added {
		m.logAdded(s, "")
	}
	if full {
		m.cfg.Logger.Warn("udpproxy: SRV lists more servers than fit", "name", m.cfg.SRV,
			"listed", strconv.Itoa(len(want)), "max_servers", m.cfg.MaxServers)
	}
}
