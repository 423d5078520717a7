package udpproxy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/discal/discal/codec"
)

// TestLoadModelSums: the groups' request rates, kept up report by report
// as servers change rates, processes and hosts and leave, are what their
// members' rates add up to, and the groups and members kept are exactly
// those still named.
func TestLoadModelSums(t *testing.T) {
	m := newLoadModel()
	servers := make([]*Server, 20)
	prev := make([]*report, len(servers))
	for i := range servers {
		servers[i] = testBackend(t, fmt.Sprintf("127.0.0.1:%d", 7001+i))
	}
	r := rand.New(rand.NewPCG(1, 2))
	served := make([]uint64, len(servers))
	at := int64(time.Second)
	for round := range 3000 {
		i := r.IntN(len(servers))
		s := servers[i]
		if s.removed.Load() {
			continue
		}
		served[i] += uint64(r.IntN(200))
		at += int64(time.Millisecond)
		rep := &report{at: at, Status: codec.Status{ProcCPU: r.Float64() * 100, HostCPU: r.Float64() * 100, Cores: 2,
			Served: served[i], HostID: fmt.Sprint("h", r.IntN(3)), ProcID: fmt.Sprint("p", r.IntN(4))}}
		m.update(s, prev[i], rep)
		prev[i] = rep
		if round%97 == 0 {
			servers[r.IntN(len(servers))].removed.Store(true)
		}
		if round%10 == 0 {
			m.recompute()
			checkSums(t, m)
		}
	}
}

func checkSums(t *testing.T, m *loadModel) {
	t.Helper()
	rate, slow, n := map[*group]float64{}, map[*group]float64{}, map[*group]int{}
	for _, mb := range m.list {
		if mb.s.removed.Load() {
			t.Fatal("a removed server is still in the model after recompute")
		}
		for _, g := range [...]*group{mb.proc, mb.host} {
			rate[g] += mb.rate
			slow[g] += mb.slowRate
			n[g]++
		}
	}
	if len(m.all) != len(n) || len(m.groups) != len(n) || len(m.members) != len(m.list) {
		t.Fatalf("%d groups kept (%d by key), %d named; %d members, %d listed", len(m.all), len(m.groups), len(n), len(m.members), len(m.list))
	}
	for i, g := range m.all {
		if g.at != i || m.groups[g.key] != g || g.n != n[g] {
			t.Fatalf("group %q: at %d (in place %d), %d members (want %d)", g.key, g.at, i, g.n, n[g])
		}
		if math.Abs(g.rate-rate[g]) > 1e-6 || math.Abs(g.slowRate-slow[g]) > 1e-6 {
			t.Fatalf("group %q: rates %v and %v, members add up to %v and %v", g.key, g.rate, g.slowRate, rate[g], slow[g])
		}
	}
}
