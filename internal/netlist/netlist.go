// Package netlist reads and checks the lists of networks that the -allow
// and -join-allow flags take.
package netlist

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse reads a comma-separated list of networks (CIDR, 10.0.0.0/8) or
// single addresses. Space around items is ignored, and so are empty items;
// a list with none gives nil.
func Parse(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
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

// Contains reports whether any of the networks holds a, an IPv4-mapped
// IPv6 address counting as IPv4.
func Contains(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
