package udpproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Discovery through DNS SRV records, the way Kubernetes (headless services)
// and Consul publish a service: each record names a host and a server's
// calculator port, and the status port is that port plus SRVStatusOffset.
// The name is looked up at start and every SRVInterval after; servers that
// appear are added, servers no longer listed removed. A lookup that fails
// (a timeout, a refused query) changes nothing: only an answer, even an
// empty one, says what the servers are.

// discover keeps the SRV servers in line with DNS until ctx ends.
func (p *Proxy) discover(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		want, err := p.lookupSRV(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				p.cfg.Logger.Warn("udpproxy: SRV lookup failed; keeping the servers found before", "name", p.cfg.SRV, "err", err)
			}
			failing = true
		default:
			if failing {
				p.cfg.Logger.Info("udpproxy: SRV lookup works again", "name", p.cfg.SRV)
			}
			failing = false
			p.applySRV(want)
		}
		t.Reset(p.cfg.SRVInterval)
	}
}

// lookupSRV returns the servers SRV lists now. A name that does not exist,
// or has no SRV records, is an answer: no servers.
func (p *Proxy) lookupSRV(ctx context.Context) ([]ServerAddr, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, srvs, err := p.cfg.Resolver.LookupSRV(ctx, "", "", p.cfg.SRV)
	if err != nil {
		if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && dnsErr.IsNotFound {
			return nil, nil
		}
		return nil, err
	}
	var out []ServerAddr
	for _, srv := range srvs {
		status := int(srv.Port) + p.cfg.SRVStatusOffset
		if srv.Port == 0 || status <= 0 || status > 65535 {
			continue
		}
		ips, err := p.cfg.Resolver.LookupNetIP(ctx, "ip", srv.Target)
		if err != nil {
			if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && dnsErr.IsNotFound {
				continue // a record naming a host that is gone: no server
			}
			return nil, err
		}
		for _, ip := range ips {
			ip = ip.Unmap()
			out = append(out, ServerAddr{
				Calc:   netip.AddrPortFrom(ip, srv.Port).String(),
				Status: netip.AddrPortFrom(ip, uint16(status)).String(),
			})
		}
	}
	return out, nil
}

// applySRV makes the SRV servers in the list those in want.
func (p *Proxy) applySRV(want []ServerAddr) {
	p.members.Lock()
	defer p.members.Unlock()
	for _, b := range p.backends() {
		if b.source == fromSRV && !slices.Contains(want, b.addr) {
			p.removeLocked(b, "no longer in DNS")
		}
	}
	full := false
	for _, a := range want {
		calc, err1 := netip.ParseAddrPort(a.Calc)
		status, err2 := netip.ParseAddrPort(a.Status)
		if err1 != nil || err2 != nil || p.findLocked(calc, status) != nil {
			continue // known already, from any source
		}
		if !p.addLocked(newLearned(a, calc, status, p.cfg.Poll, &p.allDraining, fromSRV)) {
			full = true
		}
	}
	if full {
		p.cfg.Logger.Warn("udpproxy: SRV lists more servers than fit", "name", p.cfg.SRV,
			"listed", strconv.Itoa(len(want)), "max_servers", p.cfg.MaxServers)
	}
}
