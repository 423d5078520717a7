package netlist

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// SameAddrPort reports whether a and b name one socket the way the kernel
// sees it: the same port and the same address, an IPv4-mapped IPv6 address
// being its IPv4 address. Zones compare as interfaces, so "eth0" equals
// "2" when eth0 is interface 2; a missing zone matches any, as a scope ID
// of 0 does in the kernel. The proxy uses it wherever it checks that a
// reply came from the server it asked: a server named fe80::1%eth0 answers
// from fe80::1%3 when eth0 is interface 3, and its replies must not count
// as forged.
func SameAddrPort(a, b netip.AddrPort) bool {
	if a == b {
		return true // the common case, with no zones to compare
	}
	if a.Port() != b.Port() {
		return false
	}
	x, y := a.Addr().Unmap(), b.Addr().Unmap()
	if x.WithZone("") != y.WithZone("") {
		return false
	}
	zx, zy := x.Zone(), y.Zone()
	if zx == "" || zy == "" || zx == zy {
		return true
	}
	ix, iy := ZoneIndex(zx), ZoneIndex(zy)
	return ix != 0 && ix == iy
}

// ZoneIndex returns the index of the interface a zone names, by number
// ("2") or by name ("eth0"), or 0 when there is no such interface. Names
// are looked up once and kept, so that the datagram paths can call it.
func ZoneIndex(zone string) int {
	if zone == "" {
		return 0
	}
	if n, ok := number(zone); ok {
		return n
	}
	return zones.index(zone)
}

// number reads a zone given as an interface index. It does not use
// strconv.Atoi, whose error for a name would allocate on the reply path.
func number(zone string) (int, bool) {
	n := 0
	for i := 0; i < len(zone); i++ {
		c := zone[i]
		if c < '0' || c > '9' || n > 1<<24 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n > 0
}

// zones caches the names of the machine's interfaces, as the net package
// does for its own reads. It is listed again when a name is not in it, at
// most once a second, so that a name no interface has (a server's zone
// mistyped, or its interface gone) does not make every reply list them. An interface deleted and made
// again under its old name keeps its old index here until some miss lists
// them again: rare, and no worse than a reply that counts as forged.
var zones zoneCache

type zoneCache struct {
	snap    atomic.Pointer[zoneSnap]
	fetched atomic.Int64 // unix nanoseconds of the last listing
}

// zoneSnap is one listing, never changed once published.
type zoneSnap struct {
	byName map[string]int
}

func (z *zoneCache) index(name string) int {
	if s := z.snap.Load(); s != nil {
		if i, ok := s.byName[name]; ok {
			return i
		}
	}
	if s := z.refresh(); s != nil {
		return s.byName[name]
	}
	return 0
}

// refresh lists the interfaces again unless someone did within the last
// second, and returns the new listing, or nil if it made none.
func (z *zoneCache) refresh() *zoneSnap {
	now := time.Now().UnixNano()
	last := z.fetched.Load()
	if now-last < int64(time.Second) || !z.fetched.CompareAndSwap(last, now) {
		return nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	s := &zoneSnap{byName: make(map[string]int, len(ifs))}
	for _, i := range ifs {
		s.byName[i.Name] = i.Index
	}
	z.snap.Store(s)
	return s
}
