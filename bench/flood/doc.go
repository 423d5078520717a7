// Package flood is the load engine behind the bench command: it floods a
// discal endpoint (a proxy, a server's calculator port, or any proxy in
// front of servers) with random operations whose answers it computes
// locally, checks every reply, and measures throughput, latency and how the
// work was shared between servers.
//
// Each connection is one UDP socket with a table of request slots. In the
// closed loop (the default) every slot holds one request in flight and is
// refilled the moment its answer comes; in the open loop (Config.Rate) a
// pacer sends at fixed intended times and latency counts from the intended
// time, so a slow system cannot hide its queueing (no coordinated omission).
// Sends and receives go through internal/udpbatch, so the load generator
// costs little of the CPU it shares with what it measures.
package flood
