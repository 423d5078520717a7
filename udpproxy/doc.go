// Package udpproxy routes discal requests: it takes each client datagram on
// one UDP port, forwards it to the least-loaded calculator server under an
// ID of its own, and sends the server's reply back to the client that asked,
// with the client's ID.
//
// The way of one request:
//
//	client ──▶ client loop (client.go): read the header only; pick a server
//	           (policy.go, score.go); pending.insert(internal ID → origin,
//	           server, deadline); rewrite the ID ──▶ server
//	server ──▶ upstream loop (upstream.go): read the header; pending.take(ID)
//	           if it came from that server; rewrite the ID back ──▶ client
//
// A sweep (retry.go), made by a reader after its batch or else by the
// sweeper goroutine, hedges a try that waits long (hedge.go), retries a
// request whose server did not answer within the per-try timeout once on
// another server, and answers "timeout" when that fails too, so every
// request gets an answer and every pending entry leaves the table. These
// loops, and the batch worker each runs on (worker.go), make up the router.
//
// The poller (poll.go) asks every server's status port for its load on a
// jittered interval, keeps the load model (load.go) and works out the
// fleet's figures the score reads. The membership (membership.go) owns the
// list of servers and is the one writer of each server's state: a server
// that misses three polls in a row, drains, or stops answering requests
// (passive health, health.go) leaves the rotation until it is fit again.
// The list can change while the proxy runs: servers join it (udpserver
// -join, join.go) and DNS SRV records are followed (discovery.go).
//
// Text datagrams ("6 * 7") are turned into binary requests at the edge and
// their replies printed as a line. The text command "stats", from loopback,
// prints one line per server (stats.go).
package udpproxy
