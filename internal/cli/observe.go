package cli

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/prometheus/client_golang/prometheus"
)

// Observe starts what -cpuprofile and -metrics-addr ask for (either may be
// empty): a CPU profile written to cpuprofile, and the collectors served at
// http://metricsAddr/metrics. stop ends both, writing the profile out.
func Observe(cpuprofile, metricsAddr string, cs ...prometheus.Collector) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return nil, fmt.Errorf("cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpuprofile: %w", err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if metricsAddr != "" {
		_, stopMetrics, err := ServeMetrics(metricsAddr, cs...)
		if err != nil {
			stop()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		stops = append(stops, stopMetrics)
	}
	return stop, nil
}
