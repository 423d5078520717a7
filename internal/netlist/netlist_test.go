package netlist

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
)

func TestParseAndContains(t *testing.T) {
	nets, err := Parse(" 10.0.0.0/8, 192.0.2.7 ,,::1, ::ffff:198.51.100.1, 172.16.5.9/12")
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 5 || nets[4].String() != "172.16.0.0/12" || nets[3].String() != "198.51.100.1/32" {
		t.Fatalf("parsed %v", nets)
	}
	for addr, want := range map[string]bool{
		"10.9.8.7": true, "192.0.2.7": true, "192.0.2.8": false, "::1": true, "::2": false,
		"::ffff:10.1.1.1": true, "198.51.100.1": true, "172.31.255.255": true, "172.32.0.0": false,
	} {
		if got := Contains(nets, netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1:80"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if nets, err := Parse(""); err != nil || len(nets) != 0 {
		t.Errorf("the empty list: %v, %v", nets, err)
	}
}

// TestContainsNormalizes: an address matches a network whatever form
// either is written in, IPv4-mapped or plain, with a zone or without.
func TestContainsNormalizes(t *testing.T) {
	for _, c := range []struct {
		list, addr string
		want       bool
	}{
		{"::ffff:127.0.0.0/104", "127.0.0.1", true},
		{"::ffff:127.0.0.0/104", "::ffff:127.0.0.1", true},
		{"::ffff:127.0.0.0/104", "128.0.0.1", false},
		{"::ffff:0:0/96", "203.0.113.9", true},
		{"::ffff:10.1.2.3/128", "10.1.2.3", true},
		{"::ffff:10.1.2.3/128", "10.1.2.4", false},
		{"127.0.0.0/8", "::ffff:127.0.0.1", true},
		{"::/0", "127.0.0.1", false}, // an IPv6 network holds IPv6 peers only
		{"::/0", "2001:db8::1", true},
		{"::ffff:0:0/95", "10.0.0.1", false},
		{"fe80::/10", "fe80::1%eth0", true},
		{"fe80::/10", "fe80::1%7", true},
		{"fe80::1%eth0", "fe80::1%eth1", true}, // the allow list names hosts, not links
		{"fe80::/10", "fe90::1%eth0", true},
		{"fe80::/10", "2001:db8::1", false},
	} {
		t.Run(c.list+"_"+c.addr, func(t *testing.T) {
			nets, err := Parse(c.list)
			if err != nil {
				t.Fatal(err)
			}
			if got := Contains(nets, netip.MustParseAddr(c.addr)); got != c.want {
				t.Errorf("Contains(%v, %s) = %v, want %v", nets, c.addr, got, c.want)
			}
		})
	}
}

func TestSameAddrPort(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface to name a zone: %v", err)
	}
	loIndex := strconv.Itoa(lo.Index)
	other := strconv.Itoa(lo.Index + 1000) // an interface that does not exist
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:7001", "127.0.0.1:7001", true},
		{"127.0.0.1:7001", "127.0.0.1:7002", false},
		{"127.0.0.1:7001", "127.0.0.2:7001", false},
		{"127.0.0.1:7001", "[::ffff:127.0.0.1]:7001", true},
		{"[fe80::1%lo]:7001", "[fe80::1%lo]:7001", true},
		{"[fe80::1%lo]:7001", "[fe80::1%" + loIndex + "]:7001", true}, // a name and its number
		{"[fe80::1%" + loIndex + "]:7001", "[fe80::1%lo]:7001", true},
		{"[fe80::1%lo]:7001", "[fe80::1]:7001", true}, // no zone: any interface, as scope 0
		{"[fe80::1]:7001", "[fe80::1%lo]:7001", true},
		{"[fe80::1%lo]:7001", "[fe80::1%" + other + "]:7001", false}, // another link
		{"[fe80::1%nosuchif0]:7001", "[fe80::1%" + other + "]:7001", false},
		{"[fe80::1%lo]:7001", "[fe80::2%lo]:7001", false},
		{"[fe80::1%lo]:7001", "[fe80::1%lo]:7002", false},
	} {
		t.Run(c.a+"="+c.b, func(t *testing.T) {
			a, b := netip.MustParseAddrPort(c.a), netip.MustParseAddrPort(c.b)
			if got := SameAddrPort(a, b); got != c.want {
				t.Errorf("SameAddrPort(%v, %v) = %v, want %v", a, b, got, c.want)
			}
		})
	}
}

func TestZoneNames(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	if got := ZoneIndex("lo"); got != lo.Index {
		t.Errorf("ZoneIndex(lo) = %d, want %d", got, lo.Index)
	}
	for zone, want := range map[string]int{"": 0, "12": 12, "nosuchif0": 0, "-3": 0, "0": 0, "99999999999999999999": 0} {
		if got := ZoneIndex(zone); got != want {
			t.Errorf("ZoneIndex(%q) = %d, want %d", zone, got, want)
		}
	}
}

func BenchmarkSameAddrPortZones(b *testing.B) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		b.Skip(err)
	}
	x := netip.MustParseAddrPort("[fe80::1%lo]:7001")
	y := netip.MustParseAddrPort("[fe80::1%" + strconv.Itoa(lo.Index) + "]:7001")
	b.ReportAllocs()
	for b.Loop() {
		if !SameAddrPort(x, y) {
			b.Fatal("no match")
		}
	}
}

// TestString: a list written out reads back as itself.
func TestString(t *testing.T) {
	for _, in := range []string{"", "127.0.0.0/8,::1", "10.0.0.7,fe80::/10", "0.0.0.0/0"} {
		nets, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := String(nets); got != in {
			t.Errorf("String(Parse(%q)) = %q", in, got)
		}
	}
}
