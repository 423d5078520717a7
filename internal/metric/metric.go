// Package metric holds the few helpers discal's Prometheus collectors share.
// Each collector keeps its own counters (atomics it already has for stats
// and status replies) and turns them into constant metrics when scraped, so
// that serving a request never touches Prometheus.
package metric

import "github.com/prometheus/client_golang/prometheus"

// Counter sends a counter with value v and the given label values.
func Counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

// Gauge sends a gauge with value v and the given label values.
func Gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Bool is 1 for true and 0 for false, the value of a gauge such as
// draining or up.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Describe sends every desc: a collector's Describe in one line.
func Describe(ch chan<- *prometheus.Desc, descs ...*prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}
