// Package resolve turns host names into the one address discal uses: IPv4
// first, as net.ResolveUDPAddr chooses, so that a name with both kinds of
// address gives the same answer in every part of the system (a join, a DNS
// SRV target, a -server flag).
package resolve

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Timeout bounds one HostPort lookup when its context has no sooner
// deadline: a DNS server that does not answer must not hold a round of
// joins or discovery for long.
const Timeout = 2 * time.Second

// ErrNoAddress is returned when a name has no address at all.
var ErrNoAddress = errors.New("resolve: no address")

// Pick returns the address to use of those a lookup returned: the first
// IPv4 one (IPv4-mapped IPv6 counts, and is returned unmapped), otherwise
// the first. ok is false when ips is empty.
func Pick(ips []netip.Addr) (ip netip.Addr, ok bool) {
	if len(ips) == 0 {
		return netip.Addr{}, false
	}
	k := max(slices.IndexFunc(ips, func(a netip.Addr) bool { return a.Unmap().Is4() }), 0)
	return ips[k].Unmap(), true
}

// HostPort looks up "host:port" with r (nil: net.DefaultResolver), within
// Timeout, and returns the address Pick chooses. The port may be a number
// or a service name.
func HostPort(ctx context.Context, r *net.Resolver, hostport string) (netip.AddrPort, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	pn, err := r.LookupPort(ctx, "udp", port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ip, ok := Pick(ips)
	if !ok {
		return netip.AddrPort{}, ErrNoAddress
	}
	return netip.AddrPortFrom(ip, uint16(pn)), nil
}
