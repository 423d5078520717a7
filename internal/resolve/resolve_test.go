package resolve

import (
	"context"
	"net/netip"
	"testing"
)

func TestPick(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		ips  []netip.Addr
		want netip.Addr
		ok   bool
	}{
		{"empty", nil, netip.Addr{}, false},
		{"IPv6 only", []netip.Addr{a("2001:db8::1"), a("2001:db8::2")}, a("2001:db8::1"), true},
		{"IPv4 after IPv6", []netip.Addr{a("2001:db8::1"), a("192.0.2.7")}, a("192.0.2.7"), true},
		{"mapped counts as IPv4, unmapped", []netip.Addr{a("2001:db8::1"), a("::ffff:192.0.2.8")}, a("192.0.2.8"), true},
		{"first IPv4 of several", []netip.Addr{a("192.0.2.1"), a("192.0.2.2")}, a("192.0.2.1"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Pick(tc.ips)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Pick(%v) = %v, %v; want %v, %v", tc.ips, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		bad  bool
	}{
		{in: "127.0.0.1:7000", want: "127.0.0.1:7000"},
		{in: "[::1]:7000", want: "[::1]:7000"},
		{in: "localhost:7000", want: "127.0.0.1:7000"},
		{in: "no port", bad: true},
		{in: "127.0.0.1:notaport", bad: true},
	} {
		got, err := HostPort(context.Background(), nil, tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("HostPort(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("HostPort(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
