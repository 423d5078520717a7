// Package dashboard serves the proxy's page for people: a live view of
// every server (its state, its share of the answers and its CPU over the
// last minute) and a box to compute an expression through the proxy.
//
// New returns a plain http.Handler for the proxy's HTTP listener:
//
//	GET  /              the dashboard page
//	GET  /status.json   the proxy's Stats as JSON (see udpproxy.Stats.MarshalJSON)
//	POST /calc          {"expr": "6 * 7"} → {"result": "42", "server": "s2", ...}
//	GET  /dashboard/    the page's script and style sheet
//
// Everything the page needs is embedded in the binary: it works offline and
// loads nothing from elsewhere. The page keeps its own history (the last 60
// polls of /status.json, one a second), so the proxy keeps none.
package dashboard
