package dashboard

import (
	"net"
	"testing"
)

// TestCalcAddrOf: where /calc reaches a proxy told to take any port.
func TestCalcAddrOf(t *testing.T) {
	udp := func(s string) net.Addr {
		a, err := net.ResolveUDPAddr("udp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		configured string
		live       net.Addr
		want       string
	}{
		{"127.0.0.1:0", nil, "127.0.0.1:0"}, // not serving yet: nothing better
		{"127.0.0.1:0", udp("127.0.0.1:41000"), "127.0.0.1:41000"},
		{"", udp("127.0.0.1:41000"), "127.0.0.1:41000"},
		{"0.0.0.0:0", udp("0.0.0.0:41000"), "127.0.0.1:41000"},
		{":0", udp("[::]:41000"), "[::1]:41000"},
		{"[::1]:0", udp("[::1]:41000"), "[::1]:41000"},
		{"10.0.0.5:0", udp("10.0.0.5:41000"), "10.0.0.5:41000"},
	} {
		if got := calcAddrOf(tc.configured, tc.live); got != tc.want {
			t.Errorf("calcAddrOf(%q, %v) = %q, want %q", tc.configured, tc.live, got, tc.want)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:0": true, "": true, ":0": true, "127.0.0.1:7000": false, "h:7000": false} {
		if anyPort(addr) != want {
			t.Errorf("anyPort(%q) = %v", addr, !want)
		}
	}
}
