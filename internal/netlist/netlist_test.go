package netlist

import (
	"net/netip"
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
