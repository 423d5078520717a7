package udpbatch

import (
	"bytes"
	"testing"
)

// TestManyBatchesWithoutGSO repeats batches through one Writer, with GSO
// and with it turned off as on a kernel that refuses it, and checks that
// everything arrives every time.
func TestManyBatchesWithoutGSO(t *testing.T) {
	for _, gso := range []bool{true, false} {
		sender := listen(t, "udp4", "127.0.0.1:0")
		receiver := listen(t, "udp4", "127.0.0.1:0")
		w := NewWriter(sender, Options{Batch: 8})
		w.gso.Store(gso)
		r := NewReader(receiver, Options{})
		for round := range 20 {
			out := make([]Message, 1+round%13)
			for i := range out {
				out[i] = Message{Buf: bytes.Repeat([]byte{byte('a' + i%3)}, 10+i%3), Addr: loopback(receiver)}
			}
			if n, err := w.WriteBatch(out); n != len(out) || err != nil {
				t.Fatalf("gso %v round %d: WriteBatch = %d, %v", gso, round, n, err)
			}
			if got := readAll(t, receiver, r, len(out)); len(got) != len(out) {
				t.Fatalf("gso %v round %d: got %d", gso, round, len(got))
			}
		}
	}
}

// BenchmarkSendCost times sending alone, per datagram, three ways: a plain
// write per datagram, sendmmsg with a header per datagram, and sendmmsg
// with UDP GSO to a GRO-enabled receiver. The receiver is drained between
// rounds with the clock stopped. On loopback the sender's time includes
// delivering into the receiver's queue, which is most of a send's cost.
//
//	go test -run xxx -bench SendCost ./internal/udpbatch
func BenchmarkSendCost(b *testing.B) {
	const n = 64
	for _, mode := range []string{"plain", "sendmmsg", "gso"} {
		b.Run(mode, func(b *testing.B) {
			sender := listen(b, "udp4", "127.0.0.1:0")
			receiver := listen(b, "udp4", "127.0.0.1:0")
			r := NewReader(receiver, Options{MaxSize: 512}) // asks for GRO
			w := NewWriter(sender, Options{NoGSO: mode != "gso"})
			to := loopback(receiver)
			out, in := make([]Message, n), make([]Message, n)
			for i := range out {
				out[i] = Message{Buf: make([]byte, 40), Addr: to}
			}
			b.ReportAllocs()
			for b.Loop() {
				if mode == "plain" {
					for i := range out {
						if _, err := sender.WriteToUDPAddrPort(out[i].Buf, to); err != nil {
							b.Fatal(err)
						}
					}
				} else if _, err := w.WriteBatch(out); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for got := 0; got < n; {
					k, err := r.ReadBatch(in)
					if err != nil {
						b.Fatal(err)
					}
					got += k
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/datagram")
		})
	}
}
