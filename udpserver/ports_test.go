package udpserver

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/discal/discal/codec"
)

// TestWhatEachPortAnswers is the table in docs/protocol.md of which kind
// each of the server's ports answers: what is answered with which code (and
// which carry the server's name), beside the calculation itself tested
// elsewhere.
func TestWhatEachPortAnswers(t *testing.T) {
	ts := start(t, Config{Quiet: true})
	calc, status := dial(t, ts.calc), dial(t, ts.status)
	big := func(kind codec.Kind) []byte {
		return append(codec.AppendHeader(nil, kind, 9), make([]byte, codec.MaxDatagram)...)
	}
	bigText := append([]byte("1 +"), bytes.Repeat([]byte(" "), codec.MaxDatagram)...)
	bigText = append(bigText, '1')
	tests := []struct {
		name   string
		port   *net.UDPConn
		pkt    []byte
		code   codec.Code
		server bool   // the reply carries the server's name
		text   string // for a text datagram, the line it gets
	}{
		{"status query to calc", calc, codec.AppendStatusQuery(nil, 9), codec.CodeUnexpected, true, ""},
		{"request over 512 to calc", calc, big(codec.KindRequest), codec.CodeTooLarge, true, ""},
		{"status query over 512 to calc", calc, big(codec.KindStatusQuery), codec.CodeTooLarge, true, ""},
		{"text over 512 to calc", calc, bigText, 0, false, "error: datagram too large\n"},
		{"request to status", status, codec.AppendRequest(nil, 9, codec.Request{Op: codec.OpAdd}), codec.CodeUnexpected, true, ""},
		{"status query over 512 to status", status, big(codec.KindStatusQuery), codec.CodeTooLarge, true, ""},
		{"request over 512 to status", status, big(codec.KindRequest), codec.CodeTooLarge, true, ""},
		{"text over 512 to status", status, bigText, 0, false, "error: datagram too large\n"},
		{"expression to status", status, []byte("6 * 7 + 0 + 1\n"), 0, false, "error: unexpected message: try status, burn, drain, undrain\n"},
		{"command to calc", calc, []byte("status\n"), 0, false, "error: syntax error: \"status\" is not a number\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, tt.port, tt.pkt)
			if !codec.Fits(len(got), len(tt.pkt)) {
				t.Errorf("%d bytes answered with %d", len(tt.pkt), len(got))
			}
			if tt.text != "" {
				if string(got) != tt.text {
					t.Fatalf("answered %q, want %q", got, tt.text)
				}
				return
			}
			h, err := codec.ParseHeader(got)
			if err != nil || h != (codec.Header{Kind: codec.KindReply, ID: 9}) {
				t.Fatalf("header %+v, %v", h, err)
			}
			r, err := codec.DecodeReply(got[codec.HeaderSize:])
			if err != nil || r.Err == nil || r.Err.Code != tt.code {
				t.Fatalf("reply %+v, %v; want code %d", r, err, tt.code)
			}
			if tt.server != (r.Server == "t1") {
				t.Errorf("server %q, want it named: %v", r.Server, tt.server)
			}
		})
	}
}

// TestWhatEachPortDrops: the kinds the table in docs/protocol.md says are
// dropped get no answer and are counted. The ports are read in order by the
// test's own question sent after them, whose answer shows they were all
// read.
func TestWhatEachPortDrops(t *testing.T) {
	ts := start(t, Config{Quiet: true})
	calc, status := dial(t, ts.calc), dial(t, ts.status)
	hdr := func(k codec.Kind) []byte { return append(codec.AppendHeader(nil, k, 1), make([]byte, 54)...) }
	drops := map[*net.UDPConn][][]byte{
		calc: {hdr(codec.KindReply), hdr(codec.KindStatusReply), hdr(codec.KindJoin), hdr(codec.KindJoinAck), hdr(99),
			append(hdr(codec.KindReply), make([]byte, codec.MaxDatagram)...), []byte("12"), []byte("error: x"), []byte("ok: drain"),
			{0x00, 0x01, 0x02}, codec.AppendHeader(nil, codec.KindRequest, 1)[:5]},
		status: {hdr(codec.KindReply), hdr(codec.KindStatusReply), hdr(codec.KindJoin), hdr(codec.KindJoinAck), hdr(99),
			codec.AppendHeader(nil, codec.KindStatusQuery, 1), []byte("st"), []byte("error: x"), []byte("ok: drain")},
	}
	want := uint64(0)
	for c, pkts := range drops {
		for _, pkt := range pkts {
			if _, err := c.Write(pkt); err != nil {
				t.Fatal(err)
			}
			want++
		}
	}
	// One worker of the calculator port may still hold a dropped datagram
	// when another answers, so the count is read after answers on both
	// ports and then until it settles, within a deadline.
	for c, q := range map[*net.UDPConn][]byte{calc: []byte("1+1"), status: []byte("status")} {
		got := string(exchange(t, c, q))
		if got != "2\n" && !strings.HasPrefix(got, "server=t1 ") {
			t.Fatalf("%q answered %q: a dropped datagram was answered", q, got)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for ts.Status().Dropped < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := ts.Status().Dropped; got != want {
		t.Fatalf("dropped %d, want %d", got, want)
	}
}
