// Package udpproxy routes discal requests: it takes each client datagram on
// one UDP port, forwards it to the least-loaded calculator server under an
// ID of its own, and sends the server's reply back to the client that asked,
// with the client's ID.
//
// The way of one request:
//
//	client ──▶ client loop: read header only; pick a backend (policy.go);
//	           pending.put(internal ID → client, client ID, backend, deadline);
//	           rewrite ID ──▶ server
//	server ──▶ upstream loop: read header; pending.take(ID) if it came from
//	           that backend; rewrite ID back ──▶ client
//
// A sweeper retries a request whose server did not answer within the per-try
// timeout once on another server, and answers "timeout" when that fails too,
// so every request gets an answer and every pending entry leaves the table.
// A poller (health.go) asks every server's status port for its load on a
// jittered interval; a server that misses three polls in a row leaves the
// rotation until it answers again. The list of servers can change while the
// proxy runs: servers join it (udpserver -join) and DNS SRV records are
// followed (membership.go, discovery.go).
//
// Text datagrams ("6 * 7") are turned into binary requests at the edge and
// their replies printed as a line. The text command "stats", from loopback,
// prints one line per server.
package udpproxy
