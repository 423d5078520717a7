package dashboard_test

import "github.com/discal/discal/udpproxy"

// noStats is a Source with no servers, for tests that need no proxy.
type noStats struct{}

func (noStats) Stats() udpproxy.Stats { return udpproxy.Stats{} }

func (noStats) Ready() (bool, string) { return false, "no server in rotation" }
