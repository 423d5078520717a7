package udpproxy

import "net"

// What the package's external tests need of its inside, and users do not.

// UpstreamAddr returns the address of the socket the proxy talks to the
// servers from, once Serve has started: where their replies go, and where
// a forged one would be aimed.
func (p *Proxy) UpstreamAddr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.upstream == nil {
		return nil
	}
	return p.upstream.LocalAddr()
}

func (l *limiter) sources() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
