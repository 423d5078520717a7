package udpproxy_test

import (
	"context"
	"testing"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/discaltest"
	"github.com/discal/discal/udpclient"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather reads a registry into name -> the metrics of that name.
func gather(t *testing.T, reg *prometheus.Registry) map[string][]*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetMetric()
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestMetrics: after 100 requests, one of them a division by zero, the
// proxy's and the servers' metrics say so.
func TestMetrics(t *testing.T) {
	c := startCluster(t, discaltest.Config{Servers: 2})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Proxy.Collector())
	for _, s := range c.Servers {
		reg.MustRegister(s.Running().Collector())
	}
	cl := dialClient(t, c.ProxyAddr, udpclient.Config{})
	for i := range 100 {
		b := codec.IntNumber(1)
		if i == 0 {
			b = codec.IntNumber(0)
		}
		_, _ = cl.Calc(context.Background(), codec.OpDiv, codec.IntNumber(6), b)
	}
	m := gather(t, reg)
	if v := m["discal_proxy_requests_total"][0].GetCounter().GetValue(); v != 100 {
		t.Errorf("proxy requests %v, want 100", v)
	}
	if h := m["discal_proxy_reply_seconds"][0].GetHistogram(); h.GetSampleCount() != 100 {
		t.Errorf("reply histogram holds %d samples, want 100", h.GetSampleCount())
	}
	var sent, answered float64
	for _, x := range m["discal_proxy_server_requests_total"] {
		sent += x.GetCounter().GetValue()
	}
	for _, x := range m["discal_proxy_server_answers_total"] {
		answered += x.GetCounter().GetValue()
	}
	if sent != 100 || answered != 100 {
		t.Errorf("per server: sent %v, answered %v", sent, answered)
	}
	if up := m["discal_proxy_server_up"]; len(up) != 2 || up[0].GetGauge().GetValue() != 1 {
		t.Errorf("server up: %v", up)
	}
	var divs, zero float64
	for _, x := range m["discal_server_operations_total"] {
		if label(x, "op") == "div" {
			divs += x.GetCounter().GetValue()
		}
	}
	for _, x := range m["discal_server_errors_total"] {
		if label(x, "code") == "5" && label(x, "error") == "division by zero" {
			zero += x.GetCounter().GetValue()
		}
	}
	if divs != 100 || zero != 1 {
		t.Errorf("servers: %v divisions, %v divisions by zero; want 100 and 1", divs, zero)
	}
	if _, ok := m["discal_proxy_drops_total"]; !ok {
		t.Error("no drops metric")
	}
	for _, x := range m["discal_proxy_servers"] {
		want := map[string]float64{"config": 2, "join": 0, "srv": 0}[label(x, "via")]
		if x.GetGauge().GetValue() != want {
			t.Errorf("servers via %s: %v, want %v", label(x, "via"), x.GetGauge().GetValue(), want)
		}
	}
	if len(m["discal_proxy_servers"]) != 3 {
		t.Errorf("servers by source: %v", m["discal_proxy_servers"])
	}
}
