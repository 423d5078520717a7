// Package dashboard serves the proxy's page for people: a live view of
// every server (its state, its share of the answers and its CPU over the
// last minute) and a box to compute an expression through the proxy.
//
// New returns a plain http.Handler for the proxy's HTTP listener:
//
//	GET  /              the dashboard page
//	GET  /status.json   the proxy's Stats as JSON (see udpproxy.Stats.MarshalJSON),
//	                    with the build, the uptime and what /readyz says
//	POST /calc          {"expr": "6 * 7"} → {"result": "42", "server": "s2", ...}
//	GET  /dashboard/    the page's script and style sheet
//
// /calc reads its body by what it holds, whatever the Content-Type says:
// JSON when it starts with "{", a form (field expr, where "+" is a space:
// write %2B) when it holds "=", else the expression itself as plain text,
// so that `curl -d '6 * 7' HOST/calc` works. An answer of the system,
// errors included (division by zero, an operand beyond int64), is 200; a
// body that holds no expression or one that does not parse is 400.
//
// Every route answers only a Host that is an IP address, localhost or a
// name in Config.Hosts (udpproxy -http-host), against DNS rebinding, and
// /calc refuses a POST that a browser sends for another web site
// (net/http's CrossOriginProtection); both get 403 and a reason.
//
// Everything the page needs is embedded in the binary: it works offline and
// loads nothing from elsewhere. The page keeps its own history (the last 60
// polls of /status.json, one a second), so the proxy keeps none.
package dashboard
