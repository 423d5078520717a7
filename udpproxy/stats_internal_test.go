package udpproxy

import (
	"fmt"
	"strings"
	"testing"
)

// TestStatsTextFitsADatagram: with more servers than one datagram can
// list, the stats text stops short of the limit and says how many it left
// out.
func TestStatsTextFitsADatagram(t *testing.T) {
	var servers []ServerAddr
	for i := range 1000 {
		servers = append(servers, ServerAddr{
			Calc:   fmt.Sprintf("127.0.%d.%d:7001", i/250, i%250+1),
			Status: fmt.Sprintf("127.0.%d.%d:7101", i/250, i%250+1),
		})
	}
	p, err := New(Config{Servers: servers, MaxServers: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := string(p.router.appendStatsText(nil))
	if len(out) > 65507 {
		t.Fatalf("stats text of %d bytes: more than a UDP datagram holds", len(out))
	}
	listed := strings.Count(out, "\n127.0.")
	if listed < 100 || listed == 1000 || !strings.HasSuffix(out, fmt.Sprintf("... %d more servers; see the metrics for all\n", 1000-listed)) {
		t.Fatalf("%d servers listed; the text ends %q", listed, out[max(0, len(out)-120):])
	}
}
