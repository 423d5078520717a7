// Command hop is the cheapest UDP forwarder that can stand between discal
// clients and servers: it moves batches from clients to servers (in turn)
// and back, rewriting request IDs through a plain array, with none of the
// proxy's work: no pending table, no choice of server, no checks, no
// timeouts, no retries. It is not for use; bench -compare runs it to show
// what one more hop costs on the machine by itself, the bound that any
// real proxy, udpproxy included, can only approach.
//
//	hop -addr 127.0.0.1:27040 -servers 127.0.0.1:27001,127.0.0.1:27002
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/udpbatch"
)

// slots is how many requests can be in flight; a slot is reused after that
// many more, which is far longer than any answer takes in a benchmark.
const slots = 1 << 20

func main() {
	addr := flag.String("addr", "127.0.0.1:27040", "client-facing `address`")
	servers := flag.String("servers", "", "calculator `addresses`, comma-separated")
	flag.Parse()
	var backs []netip.AddrPort
	for _, s := range strings.Split(*servers, ",") {
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hop:", err)
			os.Exit(64)
		}
		backs = append(backs, a)
	}
	la, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hop:", err)
		os.Exit(64)
	}
	client, err := net.ListenUDP("udp", la)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hop:", err)
		os.Exit(1)
	}
	up, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hop:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "hop serving addr=%s\n", client.LocalAddr())
	h := &hop{client: client, up: up, backs: backs,
		routes: make([]atomic.Pointer[netip.AddrPort], slots), addrs: make([]netip.AddrPort, slots)}
	go h.back()
	h.forth()
}

// hop moves datagrams between the clients and the servers.
type hop struct {
	client, up *net.UDPConn
	backs      []netip.AddrPort
	// routes[slot] is the client a request in that slot came from; the
	// slot rides in the low 20 bits of the ID, the client's ID above.
	routes []atomic.Pointer[netip.AddrPort]
	addrs  []netip.AddrPort
}

var opt = udpbatch.Options{Batch: 64, MaxSize: codec.MaxDatagram}

// back returns the servers' answers to their clients, with the clients'
// IDs.
func (h *hop) back() {
	r, w := udpbatch.NewReader(h.up, opt), udpbatch.NewWriter(h.client, opt)
	in := make([]udpbatch.Message, 64)
	for {
		n, err := r.ReadBatch(in)
		if err != nil {
			continue
		}
		out := in[:0]
		for _, m := range in[:n] {
			if len(m.Buf) < codec.HeaderSize {
				continue
			}
			id := binary.BigEndian.Uint64(m.Buf[codec.IDOffset:])
			p := h.routes[id&(slots-1)].Load()
			if p == nil {
				continue
			}
			m.Addr = *p
			binary.BigEndian.PutUint64(m.Buf[codec.IDOffset:], id>>20)
			out = append(out, m)
		}
		_, _ = w.WriteBatch(out)
	}
}

// forth sends the clients' requests to the servers in turn, each with its
// slot in its ID.
func (h *hop) forth() {
	r, w := udpbatch.NewReader(h.client, opt), udpbatch.NewWriter(h.up, opt)
	in := make([]udpbatch.Message, 64)
	var next uint64
	for {
		n, err := r.ReadBatch(in)
		if err != nil {
			continue
		}
		out := in[:0]
		for _, m := range in[:n] {
			if len(m.Buf) < codec.HeaderSize {
				continue
			}
			id := binary.BigEndian.Uint64(m.Buf[codec.IDOffset:])
			if id >= 1<<44 {
				continue
			}
			slot := next & (slots - 1)
			h.addrs[slot] = m.Addr
			h.routes[slot].Store(&h.addrs[slot])
			binary.BigEndian.PutUint64(m.Buf[codec.IDOffset:], id<<20|slot)
			m.Addr = h.backs[next%uint64(len(h.backs))]
			next++
			out = append(out, m)
		}
		_, _ = w.WriteBatch(out)
	}
}
