// Package netlist reads and checks the lists of networks that the -allow
// and -join-allow flags take, and compares addresses the way the kernel
// does: an IPv4-mapped IPv6 address is the IPv4 address, and an IPv6 zone
// is an interface, whether named ("eth0") or numbered ("2").
package netlist

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse reads a comma-separated list of networks (CIDR, 10.0.0.0/8) or
// single addresses. Space around items is ignored, and so are empty items;
// a list with none gives nil. An IPv4-mapped network (::ffff:10.0.0.0/104)
// is read as the IPv4 network it maps (10.0.0.0/8), since the sockets see
// IPv4 peers as IPv4; a zone on a single address is dropped.
func Parse(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, normalize(p))
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q: want a network (10.0.0.0/8) or an address", f)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// normalize masks p and turns a network inside ::ffff:0:0/96 into the IPv4
// network it maps. A shorter IPv6 network (::/0, ::ffff:0:0/95) stays
// IPv6 and holds no IPv4 address: one who writes an IPv6 network means
// IPv6 peers, and reading more into it would widen an allow list.
func normalize(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// Contains reports whether any of the networks holds a, an IPv4-mapped
// IPv6 address counting as IPv4. A zone does not matter: a link-local
// source carries its interface's, and fe80::/10 holds it on every one.
func Contains(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// String writes nets the way Parse reads them: comma-separated, a single
// address without its prefix length.
func String(nets []netip.Prefix) string {
	var b strings.Builder
	for i, p := range nets {
		if i > 0 {
			b.WriteByte(',')
		}
		if p.IsSingleIP() {
			b.WriteString(p.Addr().String())
		} else {
			b.WriteString(p.String())
		}
	}
	return b.String()
}
