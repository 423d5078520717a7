package udpproxy

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/discal/discal/internal/udpbatch"
)

// drop reasons: why a datagram got no answer.
type dropReason int

const (
	dropShort           dropReason = iota // shorter than a header
	dropMagic                             // neither the binary form nor text
	dropKind                              // a binary kind clients do not send
	dropTooLarge                          // oversized, and not a request to answer
	dropUpstream                          // a malformed datagram from the server side
	dropUnknown                           // a reply to no pending request: late, duplicate or never asked
	dropForged                            // a reply for a pending ID from an address it was not sent to
	dropStatus                            // a status reply that answers no poll
	dropForbidden                         // a command from a source that may not use it
	dropTextReply                         // a text error line: an answer, not a question
	dropRateLimited                       // over its source's rate limit
	dropJoinRefused                       // a join from outside JoinAllow, malformed, or with the list full
	dropBadText                           // a server's name or message that breaks codec's text rules (status, join or reply)
	dropUnauthenticated                   // a join without a seal that checks, with ControlKey set
	numDropReasons
)

var dropNames = [numDropReasons]string{"short", "magic", "kind", "too_large", "upstream_malformed",
	"unknown_reply", "forged_reply", "status", "forbidden", "text_reply", "rate_limited", "join_refused", "bad_text",
	"unauthenticated"}

type dropCounters [numDropReasons]atomic.Uint64

func (d *dropCounters) add(r dropReason) { d[r].Add(1) }

// dropRxOverflow names the datagrams the kernel dropped on the client
// socket before the proxy read them: its receive queue was full. The
// kernel counts them, not the proxy, so they have no dropReason.
const dropRxOverflow = "rx_overflow"

// rxOverflow asks the kernel how many client datagrams it dropped unread:
// one system call, made for Stats, the stats command and a scrape only.
// It is 0 before Serve and where the system does not say, and keeps its
// last count once the socket is closed.
func (p *Proxy) rxOverflow() uint64 {
	p.mu.Lock()
	c := p.client
	p.mu.Unlock()
	if c == nil {
		return 0
	}
	return p.rxDrops.Read(c)
}

type counters struct {
	requests atomic.Uint64 // client requests read
	text     atomic.Uint64 // of those, in the text form
	replies  atomic.Uint64 // server replies routed back
	retries  atomic.Uint64 // requests sent to a second server
	timeouts atomic.Uint64 // requests answered "timeout"
	noServer atomic.Uint64 // requests answered "no server available"
	busy     atomic.Uint64 // requests answered "busy"
	joins    atomic.Uint64 // joins taken and acknowledged
	drops    dropCounters
	rxDrops  udpbatch.DropCounter // the kernel's count of client datagrams dropped unread
}

// Stats is a snapshot of the proxy's counters and backends.
type Stats struct {
	Requests, Text, Replies, Retries, Timeouts, NoServer, Busy uint64
	Joins                                                      uint64 // joins taken, repeats included
	Pending                                                    int
	Drops                                                      map[string]uint64
	Servers                                                    []ServerStats
}

// Stats returns the proxy's counters and the state of every server.
func (p *Proxy) Stats() Stats { return p.statsOf(p.members.snap.Load()) }

// statsOf is Stats for one snapshot of the membership, which the list's
// changes cannot disturb.
func (p *Proxy) statsOf(r *roster) Stats {
	s := Stats{
		Requests: p.requests.Load(),
		Text:     p.text.Load(),
		Replies:  p.replies.Load(),
		Retries:  p.retries.Load(),
		Timeouts: p.timeouts.Load(),
		NoServer: p.noServer.Load(),
		Busy:     p.busy.Load(),
		Joins:    p.joins.Load(),
		Pending:  p.pending.Len(),
		Drops:    make(map[string]uint64, numDropReasons),
	}
	for i := range p.drops {
		s.Drops[dropNames[i]] = p.drops[i].Load()
	}
	s.Drops[dropRxOverflow] = p.rxOverflow()
	now, f := nanotime(), p.fleet.Load()
	inRotation := make(map[*Server]bool, len(r.rotation))
	for _, b := range r.rotation {
		inRotation[b] = true
	}
	for _, b := range r.all {
		s.Servers = append(s.Servers, b.stats(now, f, inRotation[b]))
	}
	return s
}

// appendStatsText is the answer to the text command "stats": one line for
// the proxy, then one per server.
//
//	proxy policy=least-load pending=0 requests=10 replies=10 retries=0 timeouts=0 no_server=0 busy=0 dropped=0
//	s1 127.0.0.1:7001 up host_cpu=12.0% proc_cpu=3.1% cores=2 in_flight=0 latency=153µs age=42ms sent=4 answered=4 timeouts=0 score=0.000
//	s2 127.0.0.1:7002 ejected host_cpu=3.0% proc_cpu=0.1% cores=2 in_flight=0 latency=0s age=12ms sent=9 answered=2 timeouts=7 score=0.000 ejections=1 ejected_for=1.2s reason="5 tries in a row got no answer"
func (p *Proxy) appendStatsText(b []byte) []byte {
	all := p.members.snap.Load()
	s := p.statsOf(all)
	var dropped uint64
	for _, n := range s.Drops {
		dropped += n
	}
	b = append(b, "proxy policy="...)
	b = append(b, p.cfg.Policy.String()...)
	b = appendKV(b, "pending", uint64(s.Pending))
	b = appendKV(b, "requests", s.Requests)
	b = appendKV(b, "replies", s.Replies)
	b = appendKV(b, "retries", s.Retries)
	b = appendKV(b, "timeouts", s.Timeouts)
	b = appendKV(b, "no_server", s.NoServer)
	b = appendKV(b, "busy", s.Busy)
	b = appendKV(b, "dropped", dropped)
	b = appendKV(b, "servers", uint64(len(all.all)))
	b = appendKV(b, "in_rotation", uint64(len(all.rotation)))
	b = appendKV(b, "goroutines", uint64(runtime.NumGoroutine()))
	b = append(b, '\n')
	for i, bs := range s.Servers {
		if len(b) > maxStatsText {
			// A datagram holds 65,507 bytes at most: say what is left out
			// rather than send nothing.
			b = append(b, "... "...)
			b = strconv.AppendInt(b, int64(len(s.Servers)-i), 10)
			b = append(b, " more servers; see the metrics for all\n"...)
			break
		}
		b = appendServerLine(b, &bs)
	}
	return b
}

// appendServerLine is one server's line of the stats text.
func appendServerLine(b []byte, bs *ServerStats) []byte {
	b = append(b, bs.Name...)
	b = append(b, ' ')
	b = append(b, bs.Addr.Calc...)
	switch {
	case !bs.Up:
		b = append(b, " down"...)
	case bs.Ejected:
		b = append(b, " ejected"...)
	case bs.Draining:
		b = append(b, " draining"...)
	default:
		b = append(b, " up"...)
	}
	if bs.HasReport {
		b = append(b, " host_cpu="...)
		b = strconv.AppendFloat(b, bs.Report.HostCPU, 'f', 1, 64)
		b = append(b, "% proc_cpu="...)
		b = strconv.AppendFloat(b, bs.Report.ProcCPU, 'f', 1, 64)
		b = append(b, '%')
		b = appendKV(b, "cores", uint64(bs.Report.Cores))
	} else {
		b = append(b, " no_report"...)
	}
	b = append(b, " in_flight="...)
	b = strconv.AppendInt(b, bs.InFlight, 10)
	b = append(b, " latency="...)
	b = append(b, (time.Duration(bs.LatencyUS) * time.Microsecond).String()...)
	if bs.HasReport {
		b = append(b, " age="...)
		b = append(b, bs.ReportAge.Round(time.Millisecond).String()...)
	}
	b = appendKV(b, "sent", bs.Sent)
	b = appendKV(b, "answered", bs.Answered)
	b = appendKV(b, "timeouts", bs.Timeouts)
	b = append(b, " score="...)
	b = strconv.AppendFloat(b, bs.Score, 'f', 3, 64)
	if bs.Ejections > 0 {
		b = appendKV(b, "ejections", bs.Ejections)
	}
	if bs.Ejected {
		b = append(b, " ejected_for="...)
		b = append(b, bs.EjectedFor.Round(time.Millisecond).String()...)
		b = append(b, " reason="...)
		b = strconv.AppendQuote(b, bs.EjectReason)
	}
	if bs.Source == "srv" {
		b = appendKV(b, "priority", uint64(bs.Priority))
		b = appendKV(b, "weight", uint64(bs.Weight))
	}
	if bs.Source != "config" {
		// Last on the line, where it has always been.
		b = append(b, " via="...)
		b = append(b, bs.Source...)
	}
	return append(b, '\n')
}

// maxStatsText is where the stats text stops adding server lines: one more
// line (at most a few hundred bytes, a name being at most 64) and the
// closing note still fit in one UDP datagram.
const maxStatsText = 64000

func appendKV(b []byte, k string, v uint64) []byte {
	b = append(b, ' ')
	b = append(b, k...)
	b = append(b, '=')
	return strconv.AppendUint(b, v, 10)
}
