package udpproxy

import (
	"github.com/discal/discal/internal/metric"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus metrics. They read the same counters
// as Stats when scraped, so they cost the hot path nothing, except the
// histogram of reply times, which the reply path feeds when metrics are on.
type metrics struct {
	stats   func() Stats // the proxy's Stats
	replies prometheus.Histogram

	requests, repliesTotal, retries, pending *prometheus.Desc
	errors, drops, joins, servers            *prometheus.Desc
	hedges, hedgeWins, rxBuffers             *prometheus.Desc
	srvSent, srvAnswered, srvTimeouts        *prometheus.Desc
	srvRetries, srvInFlight, srvCPU          *prometheus.Desc
	srvAge, srvUp, srvDraining, srvLatency   *prometheus.Desc
	srvEjected, srvEjections, srvInRotation  *prometheus.Desc
}

// newReplyHistogram is the histogram of reply times that the reply path
// feeds once metrics are asked for.
func newReplyHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "discal_proxy_reply_seconds",
		Help: "Time from forwarding a request to a server to routing its reply back.",
		// 50 us to 1.6 s: loopback answers take a fraction of a
		// millisecond, a retry takes the try timeout.
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
	})
}

// newMetrics returns the collector of what stats says, and of replies.
func newMetrics(stats func() Stats, replies prometheus.Histogram) *metrics {
	server := []string{"server", "addr"}
	return &metrics{
		stats:         stats,
		replies:       replies,
		requests:      prometheus.NewDesc("discal_proxy_requests_total", "Client requests read.", nil, nil),
		repliesTotal:  prometheus.NewDesc("discal_proxy_replies_total", "Server replies routed back to clients.", nil, nil),
		retries:       prometheus.NewDesc("discal_proxy_retries_total", "Requests sent to another server after a try timed out.", nil, nil),
		pending:       prometheus.NewDesc("discal_proxy_pending", "Requests waiting for an answer.", nil, nil),
		errors:        prometheus.NewDesc("discal_proxy_errors_total", "Requests the proxy answered with an error of its own, by reason.", []string{"reason"}, nil),
		drops:         prometheus.NewDesc("discal_proxy_drops_total", "Datagrams dropped unanswered, by reason.", []string{"reason"}, nil),
		joins:         prometheus.NewDesc("discal_proxy_joins_total", "Server joins taken and acknowledged, repeats included.", nil, nil),
		hedges:        prometheus.NewDesc("discal_proxy_hedges_total", "Hedges sent: copies of a try that waited past its server's recent 95th percentile, to a second server.", nil, nil),
		hedgeWins:     prometheus.NewDesc("discal_proxy_hedge_wins_total", "Hedges whose answer came first.", nil, nil),
		rxBuffers:     prometheus.NewDesc("discal_proxy_rx_buffers_total", "Buffers read on the client socket, a datagram or a client's GSO batch: with drops{reason=\"rx_overflow\"}, counted in the same units, what arrived.", nil, nil),
		servers:       prometheus.NewDesc("discal_proxy_servers", "Servers in the list, by how the proxy learned of them.", []string{"via"}, nil),
		srvSent:       prometheus.NewDesc("discal_proxy_server_requests_total", "Requests forwarded to the server, retries included.", server, nil),
		srvAnswered:   prometheus.NewDesc("discal_proxy_server_answers_total", "Replies from the server routed back.", server, nil),
		srvTimeouts:   prometheus.NewDesc("discal_proxy_server_timeouts_total", "Tries at the server that got no answer in time.", server, nil),
		srvRetries:    prometheus.NewDesc("discal_proxy_server_retries_total", "Retries sent to the server after a try elsewhere timed out.", server, nil),
		srvInFlight:   prometheus.NewDesc("discal_proxy_server_in_flight", "Requests sent to the server and not yet answered.", server, nil),
		srvCPU:        prometheus.NewDesc("discal_proxy_server_cpu_percent", "CPU the server last reported: its process (percent of one core) or its host (percent of all cores).", append(server, "of"), nil),
		srvAge:        prometheus.NewDesc("discal_proxy_server_report_age_seconds", "Age of the server's last status report.", server, nil),
		srvUp:         prometheus.NewDesc("discal_proxy_server_up", "1 while the server's status port answers polls (in rotation or not: see discal_proxy_server_in_rotation).", server, nil),
		srvDraining:   prometheus.NewDesc("discal_proxy_server_draining", "1 if the server reports draining.", server, nil),
		srvLatency:    prometheus.NewDesc("discal_proxy_server_latency_seconds", "The server's recent mean reply time.", server, nil),
		srvEjected:    prometheus.NewDesc("discal_proxy_server_ejected", "1 while passive health keeps the server out of rotation: its calculator port stopped answering.", server, nil),
		srvEjections:  prometheus.NewDesc("discal_proxy_server_ejections_total", "Times passive health ejected the server, by reason.", append(server, "reason"), nil),
		srvInRotation: prometheus.NewDesc("discal_proxy_server_in_rotation", "1 if the server takes new work now (up, not draining, not ejected).", server, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.replies.Describe(ch)
	metric.Describe(ch, m.requests, m.repliesTotal, m.retries, m.pending, m.errors, m.drops, m.joins, m.servers, m.hedges, m.hedgeWins, m.rxBuffers,
		m.srvSent, m.srvAnswered, m.srvTimeouts, m.srvRetries, m.srvInFlight, m.srvCPU, m.srvAge, m.srvUp, m.srvDraining, m.srvLatency,
		m.srvEjected, m.srvEjections, m.srvInRotation)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.replies.Collect(ch)
	st := m.stats()
	metric.Counter(ch, m.requests, st.Requests)
	metric.Counter(ch, m.repliesTotal, st.Replies)
	metric.Counter(ch, m.retries, st.Retries)
	metric.Gauge(ch, m.pending, float64(st.Pending))
	metric.Counter(ch, m.errors, st.Timeouts, "timeout")
	metric.Counter(ch, m.errors, st.NoServer, "no_server")
	metric.Counter(ch, m.errors, st.Busy, "busy")
	for reason, n := range st.Drops {
		metric.Counter(ch, m.drops, n, reason)
	}
	metric.Counter(ch, m.joins, st.Joins)
	metric.Counter(ch, m.hedges, st.Hedges)
	metric.Counter(ch, m.hedgeWins, st.HedgeWins)
	metric.Counter(ch, m.rxBuffers, st.RxBuffers)
	via := map[string]int{"config": 0, "join": 0, "srv": 0}
	for _, b := range st.Servers {
		via[b.Source]++
	}
	for k, n := range via {
		metric.Gauge(ch, m.servers, float64(n), k)
	}
	for _, b := range st.Servers {
		l := []string{b.Name, b.Addr.Calc}
		metric.Counter(ch, m.srvSent, b.Sent, l...)
		metric.Counter(ch, m.srvAnswered, b.Answered, l...)
		metric.Counter(ch, m.srvTimeouts, b.Timeouts, l...)
		metric.Counter(ch, m.srvRetries, b.Retries, l...)
		metric.Gauge(ch, m.srvInFlight, float64(b.InFlight), l...)
		metric.Gauge(ch, m.srvUp, metric.Bool(b.Up), l...)
		metric.Gauge(ch, m.srvDraining, metric.Bool(b.Draining), l...)
		metric.Gauge(ch, m.srvLatency, b.LatencyUS/1e6, l...)
		metric.Gauge(ch, m.srvEjected, metric.Bool(b.Ejected), l...)
		metric.Gauge(ch, m.srvInRotation, metric.Bool(b.InRotation), l...)
		// Ejections have one reason today, tries left unanswered; the label
		// leaves room for more rules without renaming the metric.
		metric.Counter(ch, m.srvEjections, b.Ejections, append(l, "timeouts")...)
		if b.HasReport {
			metric.Gauge(ch, m.srvCPU, b.Report.ProcCPU, append(l, "process")...)
			metric.Gauge(ch, m.srvCPU, b.Report.HostCPU, append(l, "host")...)
			metric.Gauge(ch, m.srvAge, b.ReportAge.Seconds(), l...)
		}
	}
}
