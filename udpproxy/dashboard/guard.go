package dashboard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The dashboard guards itself against web sites that a browser on the
// operator's machine visits:
//
//   - DNS rebinding: a site makes its own name resolve to the proxy's
//     address, and its page then reads /status.json or posts to /calc as
//     the same origin. The browser still sends the site's name as Host, so
//     the dashboard answers only a Host that is an IP literal, localhost
//     (or a name under .localhost), or a name the operator listed
//     (udpproxy -http-host).
//   - Cross-site request forgery: a site's form posts to /calc. Browsers
//     say where a request comes from (Sec-Fetch-Site, Origin), and
//     net/http's CrossOriginProtection refuses a POST from elsewhere.
//     Clients that are not browsers (curl, scripts) send neither and pass.

// hosts is the set of names besides IP literals and localhost that the
// dashboard answers to, in normalHost's form.
type hosts map[string]bool

func newHosts(names []string) hosts {
	hs := hosts{}
	for _, n := range names {
		if n = normalHost(n); n != "" {
			hs[n] = true
		}
	}
	return hs
}

// normalHost is a Host header or a listed name without its port, brackets,
// trailing dot or capitals: "Proxy.Example.:9100" is "proxy.example".
func normalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// allows says whether a request with this Host header may be answered.
func (hs hosts) allows(host string) bool {
	name := normalHost(host)
	if _, err := netip.ParseAddr(name); err == nil {
		return true // an address is its own origin: nothing to rebind
	}
	return name == "localhost" || strings.HasSuffix(name, ".localhost") || hs[name]
}

// guard says why r must be refused (403), or nil.
func (h *Handler) guard(r *http.Request) error {
	if !h.hosts.allows(r.Host) {
		return fmt.Errorf("%w: Host %q; use the proxy's address or localhost, or start it with -http-host %s",
			errHost, r.Host, normalHost(r.Host))
	}
	if err := h.csrf.Check(r); err != nil {
		return fmt.Errorf("%w: %w", errCrossOrigin, err)
	}
	return nil
}
