package udpproxy

import (
	"net/netip"
	"testing"

	"github.com/discal/discal/codec"
)

// The proxy's datagram handlers take anything any client or server sends.
// These targets check that no input panics them and that no answer to a
// client is more than codec.MaxAmplification times what it answers.
// Run one with: go test -fuzz FuzzHandleClient ./udpproxy

func fuzzProxy(t testing.TB) (*Proxy, *worker) {
	p, err := New(Config{Servers: []ServerAddr{
		{Calc: "127.0.0.1:7001", Status: "127.0.0.1:7101"},
		{Calc: "127.0.0.1:7002", Status: "127.0.0.1:7102"},
	}, MaxPending: 64, MaxServers: 8, JoinAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	return p, p.router.newWorker(nil)
}

func FuzzHandleClient(f *testing.F) {
	f.Add(codec.AppendRequest(nil, 1, codec.Request{Op: codec.OpAdd, A: codec.IntNumber(1), B: codec.IntNumber(2)}))
	f.Add([]byte("6 * 7\n"))
	f.Add([]byte("stats"))
	f.Add(codec.AppendHeader(nil, codec.KindReply, 5))
	f.Add(codec.AppendJoin(nil, 6, codec.Join{CalcPort: 7003, Name: "j"}))
	p, w := fuzzProxy(f)
	client := netip.MustParseAddrPort("127.0.0.1:5555")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > codec.MaxDatagram+1 {
			pkt = pkt[:codec.MaxDatagram+1] // what a reader hands over at most
		}
		in := append([]byte(nil), pkt...)
		p.router.handleClient(w, 0, pkt, client)
		for _, m := range w.toClients {
			if codec.TextCommand(in) != "stats" && len(m.Buf) > codec.MaxAmplification*len(in) {
				t.Fatalf("%q answered with %d bytes", in, len(m.Buf))
			}
		}
		for _, m := range w.toServers {
			if h, err := codec.ParseHeader(m.Buf); err != nil || h.Kind != codec.KindRequest {
				t.Fatalf("forwarded something that is not a request: %x", m.Buf)
			}
		}
		w.toClients, w.toServers = w.toClients[:0], w.toServers[:0]
		// Expire what piled up, so that the table does not fill.
		p.router.pending.expired(1<<62, func(id uint64, e *entry) { p.router.pending.release(id, e) })
	})
}

func FuzzHandleUpstream(f *testing.F) {
	f.Add(codec.AppendReply(nil, 1, codec.Reply{Result: codec.IntNumber(42), Server: "s1"}))
	f.Add(codec.AppendReply(nil, 1, codec.Reply{Err: codec.ErrDivByZero}))
	f.Add([]byte{0xd1, 0x02})
	p, w := fuzzProxy(f)
	b := p.members.servers()[0]
	client := netip.MustParseAddrPort("127.0.0.1:5555")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		// A request waits for an answer under ID 1, from a text client,
		// so that replies the fuzzer makes can be routed and printed.
		e := entry{server: b, origin: origin{addr: client, text: true, size: 6}}
		e.setRequest(codec.AppendRequest(nil, 0, codec.Request{Op: codec.OpAdd}))
		s := p.router.pending.shard(1)
		s.mu.Lock()
		s.m[1] = &e
		s.push(1, &e)
		s.mu.Unlock()
		p.router.pending.size.Add(1)
		p.router.handleUpstream(w, 0, pkt, b.calc)
		for _, m := range w.toClients {
			if len(m.Buf) > codec.MaxAmplification*6 {
				t.Fatalf("a text answer of %d bytes to a 6-byte question: %q", len(m.Buf), m.Buf)
			}
		}
		w.toClients = w.toClients[:0]
		if _, ok, _ := p.router.pending.take(1, b.calc); ok {
			return // not taken by the fuzzed reply: taken here
		}
	})
}
