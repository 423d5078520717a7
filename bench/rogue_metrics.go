package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverMetrics is what the proxy's metrics say of one server.
type serverMetrics struct {
	requests   float64 // discal_proxy_server_requests_total: tries sent, retries included
	retries    float64 // discal_proxy_server_retries_total
	ejected    bool    // discal_proxy_server_ejected
	inRotation bool    // discal_proxy_server_in_rotation
	ejections  float64 // discal_proxy_server_ejections_total, every reason
}

// firstTries is the requests that went to the server on their first try.
func (m serverMetrics) firstTries() float64 { return m.requests - m.retries }

// scrapeServers reads a proxy's per-server metrics, keyed by each server's
// calculator address (the addr label): the bench knows the addresses it
// configured, not the names the servers give.
func scrapeServers(client *http.Client, addr string) (map[string]serverMetrics, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("the proxy's metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]serverMetrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, labels, ok := strings.Cut(sc.Text(), "{")
		if !ok || !strings.HasPrefix(name, "discal_proxy_server_") {
			continue
		}
		labels, value, ok := strings.Cut(labels, "} ")
		server := labelValue(labels, "addr")
		v, err := strconv.ParseFloat(value, 64)
		if !ok || server == "" || err != nil {
			continue
		}
		m := out[server]
		switch name {
		case "discal_proxy_server_requests_total":
			m.requests = v
		case "discal_proxy_server_retries_total":
			m.retries = v
		case "discal_proxy_server_ejected":
			m.ejected = v == 1
		case "discal_proxy_server_in_rotation":
			m.inRotation = v == 1
		case "discal_proxy_server_ejections_total":
			m.ejections += v
		}
		out[server] = m
	}
	return out, sc.Err()
}

// labelValue finds key="value" in a metric's labels; label values here
// (addresses, names) hold no quotes.
func labelValue(labels, key string) string {
	for _, kv := range strings.Split(labels, ",") {
		if v, ok := strings.CutPrefix(kv, key+`="`); ok {
			return strings.TrimSuffix(v, `"`)
		}
	}
	return ""
}

// watchEvery is how often the proxy's metrics are read while waiting for
// an ejection or a return: fine enough to time a one-second target.
const watchEvery = 10 * time.Millisecond

// watchServer reads the proxy's metrics every watchEvery until the server
// at calc is as want says, or until the deadline. It returns how long after
// from that was seen, and whether it was.
func watchServer(ctx context.Context, client *http.Client, metrics, calc string, from, deadline time.Time,
	want func(serverMetrics) bool) (time.Duration, bool) {
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for {
		if ms, err := scrapeServers(client, metrics); err == nil && want(ms[calc]) {
			return time.Since(from), true
		}
		if time.Now().After(deadline) {
			return time.Since(from), false
		}
		select {
		case <-ctx.Done():
			return time.Since(from), false
		case <-tick.C:
		}
	}
}
