package codec_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/discal/discal/arith"
	"github.com/discal/discal/codec"
)

// A client builds a request datagram; a server decodes it and answers.
func Example() {
	pkt := codec.AppendRequest(nil, 42, codec.Request{Op: codec.OpMul, A: codec.IntNumber(6), B: codec.IntNumber(7)})
	fmt.Printf("request: %d bytes\n", len(pkt))

	reply := serveDatagram(pkt)
	r, err := codec.DecodeReply(reply[codec.HeaderSize:])
	fmt.Printf("reply: %d bytes, %v from %s, %v\n", len(reply), r.Result, r.Server, err)
	// Output:
	// request: 40 bytes
	// id 42: 6 * 7
	// reply: 37 bytes, 42 from s1, <nil>
}

// serveDatagram is a server's side of Example: the reply to a datagram, or nil
// for one that gets none. What cannot be decoded is answered with its
// error's code, when the datagram has an ID to answer to; a real server
// also keeps every answer within the amplification bound (AppendBounded).
func serveDatagram(pkt []byte) []byte {
	h, err := codec.ParseHeader(pkt)
	switch {
	case errors.Is(err, codec.ErrTooLarge):
		return codec.AppendReply(nil, h.ID, codec.Reply{Err: codec.ErrTooLarge, Server: "s1"})
	case err != nil, h.Kind != codec.KindRequest:
		return nil // no ID to answer, or not a request: dropped, and counted
	}
	req, err := codec.DecodeRequest(pkt[codec.HeaderSize:])
	if err != nil {
		return codec.AppendReply(nil, h.ID, codec.Reply{Err: codec.AsError(err), Server: "s1"})
	}
	fmt.Printf("id %d: %v\n", h.ID, req)
	res, err := arith.Eval(req.Op, req.A, req.B)
	if err != nil {
		return codec.AppendReply(nil, h.ID, codec.Reply{Err: codec.AsError(err), Server: "s1"})
	}
	return codec.AppendReply(nil, h.ID, codec.Reply{Result: res, Server: "s1"})
}

// The text form, as a person types it into netcat, and the line that
// answers it.
func ExampleParseExpr() {
	for _, line := range []string{"6 * 7\n", "add 2 3", "7/2", "1 + 2 + 3"} {
		req, err := codec.ParseExpr(line)
		if err != nil {
			fmt.Print(string(codec.AppendTextError(nil, codec.AsError(err))))
			continue
		}
		fmt.Printf("%v: %s %v %v\n", req, req.Op, req.A, req.B)
	}
	// Output:
	// 6 * 7: mul 6 7
	// 2 + 3: add 2 3
	// 7 / 2: div 7 2
	// error: syntax error: want NUMBER OP NUMBER or OP NUMBER NUMBER
}

// An error reply within the amplification bound: the full message when it
// fits ten times the request, its code's short form when it does not.
func ExampleAppendBounded() {
	e := codec.Errorf(codec.CodeUnknownOp, "unknown operation %q", strings.Repeat("x", 24))
	for _, reqLen := range []int{40, 3} {
		out := codec.AppendBounded(nil, reqLen, true, 0, codec.Reply{Err: e})
		fmt.Printf("%d-byte request: %q\n", reqLen, out)
	}
	// Output:
	// 40-byte request: "error: unknown operation \"xxxxxxxxxxxxxxxxxxxxxxxx\"\n"
	// 3-byte request: "error: unknown operation\n"
}

// Numbers print as a person writes them, in plain decimal from 1e-6 up to
// 1e15 and with an exponent outside that range.
func ExampleNumber_String() {
	for _, n := range []codec.Number{codec.IntNumber(42), codec.FloatNumber(3.5), codec.FloatNumber(5),
		codec.FloatNumber(0.000001), codec.FloatNumber(2.5e-7), codec.FloatNumber(1e15)} {
		fmt.Println(n)
	}
	// Output:
	// 42
	// 3.5
	// 5
	// 0.000001
	// 2.5e-07
	// 1e+15
}

// A server name that would forge a line of the proxy's stats refuses the
// status reply that carries it.
func ExampleErrBadText() {
	pkt := codec.AppendStatus(nil, 1, codec.Status{Server: "s1\nproxy pending=0"})
	_, err := codec.DecodeStatus(pkt[codec.HeaderSize:])
	fmt.Println(errors.Is(err, codec.ErrBadText))
	// Output:
	// true
}
