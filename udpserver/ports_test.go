package udpserver

import (
	"bytes"
	"net"
	"testing"

	"github.com/discal/discal/codec"
)

// TestWhatEachPortAnswers is the README's table of which kind each of the
// server's ports answers: what is answered with which code (and which
// carry the server's name), beside the calculation itself tested elsewhere.
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
