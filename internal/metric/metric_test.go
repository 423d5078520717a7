package metric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type collector struct{ total, up, labelled *prometheus.Desc }

func (c collector) Describe(ch chan<- *prometheus.Desc) { Describe(ch, c.total, c.up, c.labelled) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	Counter(ch, c.total, 7)
	Gauge(ch, c.up, Bool(true))
	Gauge(ch, c.labelled, Bool(false), "x")
}

func TestHelpers(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector{
		total:    prometheus.NewDesc("t_total", "A counter.", nil, nil),
		up:       prometheus.NewDesc("t_up", "A gauge.", nil, nil),
		labelled: prometheus.NewDesc("t_draining", "A labelled gauge.", []string{"of"}, nil),
	})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = v
		}
	}
	want := map[string]float64{"t_total": 7, "t_up": 1, "t_draining,of=x": 0}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
