package udpserver

import (
	"github.com/discal/discal/codec"
	"github.com/discal/discal/internal/metric"
	"github.com/prometheus/client_golang/prometheus"
)

// maxCode bounds the error codes counted one by one; the wire format's are
// all below it.
const maxCode = 64

// metrics are the server's Prometheus metrics, read from its counters when
// scraped: operations by kind, answers by error code, and the figures the
// status port reports.
type metrics struct {
	s                                         *Server
	ops, errs, served, dropped, denied, logDr *prometheus.Desc
	inFlight, cpu, draining, burn             *prometheus.Desc
	unauth                                    *prometheus.Desc
}

// Collector returns the server's metrics for a Prometheus registry. Every
// metric carries the label server="NAME": Config.Name, or the calculator
// address when Collector is called after Serve has started. A daemon that
// lets the name default opens its sockets first (see cmd/udpserver).
func (s *Server) Collector() prometheus.Collector {
	name := prometheus.Labels{"server": s.Name()}
	return &metrics{
		s:        s,
		ops:      prometheus.NewDesc("discal_server_operations_total", "Operations computed, by kind.", []string{"op"}, name),
		errs:     prometheus.NewDesc("discal_server_errors_total", "Requests answered with an error, by code.", []string{"code", "error"}, name),
		served:   prometheus.NewDesc("discal_server_requests_total", "Requests answered, results and errors.", nil, name),
		dropped:  prometheus.NewDesc("discal_server_dropped_total", "Datagrams dropped unanswered: malformed, too short, or answers themselves.", nil, name),
		denied:   prometheus.NewDesc("discal_server_denied_total", "Datagrams from sources not allowed, dropped.", nil, name),
		logDr:    prometheus.NewDesc("discal_server_log_dropped_total", "Operation log lines dropped because the console fell behind.", nil, name),
		unauth:   prometheus.NewDesc("discal_server_unauthenticated_total", "Control messages (drain, undrain, burn, join acks) refused unanswered: -control-key is set and their seal did not check.", nil, name),
		inFlight: prometheus.NewDesc("discal_server_in_flight", "Requests being computed.", nil, name),
		cpu:      prometheus.NewDesc("discal_server_cpu_percent", "CPU measured by the sampler: the process (percent of one core) or the host (percent of all cores).", []string{"of"}, name),
		draining: prometheus.NewDesc("discal_server_draining", "1 while the server drains.", nil, name),
		burn:     prometheus.NewDesc("discal_server_burn_fraction", "The fraction of a core kept busy on purpose (-burn).", nil, name),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	metric.Describe(ch, m.ops, m.errs, m.served, m.dropped, m.denied, m.logDr, m.unauth, m.inFlight, m.cpu, m.draining, m.burn)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.s
	for _, op := range codec.Ops {
		metric.Counter(ch, m.ops, s.ops[op].Load(), op.String())
	}
	for code := range codec.Code(maxCode) {
		if n := s.codes[code].Load(); n > 0 {
			metric.Counter(ch, m.errs, n, codec.IntNumber(int64(code)).String(), (&codec.Error{Code: code}).Short().Message)
		}
	}
	st := s.Stats()
	metric.Counter(ch, m.served, st.Served)
	metric.Counter(ch, m.dropped, st.Dropped)
	metric.Counter(ch, m.denied, st.Denied)
	metric.Counter(ch, m.logDr, st.LogDropped)
	metric.Counter(ch, m.unauth, st.Unauthenticated)
	metric.Gauge(ch, m.inFlight, float64(st.InFlight))
	metric.Gauge(ch, m.cpu, s.sampler.ProcCPU(), "process")
	metric.Gauge(ch, m.cpu, s.sampler.HostCPU(), "host")
	metric.Gauge(ch, m.draining, metric.Bool(s.Draining()))
	metric.Gauge(ch, m.burn, s.Burn())
}
