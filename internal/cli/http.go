package cli

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc says whether a daemon should be given work, and if not, why,
// in a few words: (*udpproxy.Proxy).Ready and (*udpserver.Server).Ready.
// A daemon that is ready but not at its best says so in reason
// ("degraded: ..."); reason is empty when all is well.
type ReadyFunc func() (ok bool, reason string)

// HTTP is the HTTP listener of -http-addr. It serves
//
//	/metrics  Prometheus metrics: the collectors given, the Go runtime's, the process's and discal_build_info
//	/healthz  200 "ok" while the process runs (liveness)
//	/readyz   200 "ok" (or "ok, " and a note: "ok, degraded: ..."), or 503 and a one-line reason, from the ReadyFunc (readiness)
//	/         a short page that links the others, unless Handle was given "/"
//
// and whatever else is added with Handle before Start: a dashboard, a JSON
// status. Kubernetes probes, load balancers and Prometheus all use it; the
// daemons' own traffic is UDP.
//
// It is bounded against clients that open requests and never finish them
// (see the limits below): each is cut by a timeout, at most maxInFlight
// requests are served at once beside the probes, and the probes are never
// turned away or queued behind the rest.
type HTTP struct {
	name    string
	mux     *http.ServeMux
	ready   ReadyFunc
	paths   []string      // what the index lists
	slots   chan struct{} // a request in progress holds one; the probes need none
	hasRoot bool

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

// NewHTTP returns the endpoint of the daemon name (for the index page),
// with ready for /readyz (nil: always ready) and cs for /metrics.
func NewHTTP(name string, ready ReadyFunc, cs ...prometheus.Collector) (*HTTP, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoCollector())
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	if ready == nil {
		ready = func() (bool, string) { return true, "" }
	}
	h := &HTTP{name: name, mux: http.NewServeMux(), ready: ready, slots: make(chan struct{}, maxInFlight)}
	h.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	h.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, "ok") }))
	h.Handle("GET /readyz", http.HandlerFunc(h.readyz))
	return h, nil
}

// Handle adds a handler, with a net/http ServeMux pattern ("GET /status.json",
// "/"). Call it before Start. Registering "/" or "/{$}" replaces the index
// page; a pattern the mux already has panics, as http.ServeMux does.
func (h *HTTP) Handle(pattern string, handler http.Handler) {
	h.mux.Handle(pattern, handler)
	path := pattern
	if _, p, ok := strings.Cut(pattern, " "); ok {
		path = p
	}
	if path == "/" || path == "/{$}" {
		h.hasRoot = true
		return
	}
	h.paths = append(h.paths, path)
}

// Handler returns the whole endpoint, index included, with the bounds on
// a request's body and on the requests in progress, for a caller that
// serves it itself (a test, another listener). The timeouts are Start's.
func (h *HTTP) Handler() http.Handler {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.hasRoot {
		h.hasRoot = true
		h.mux.HandleFunc("GET /{$}", h.index)
	}
	return http.HandlerFunc(h.limit)
}

// The bounds of the listener. A client that opens a request and never
// finishes it holds a socket, a goroutine and their buffers (before these
// bounds, 5,000 unfinished bodies held 5,013 file descriptors and 100 MB);
// the timeouts cut each such client, and maxInFlight caps how many are held
// at once.
const (
	// readHeaderTimeout bounds the request line and headers.
	readHeaderTimeout = 5 * time.Second
	// readTimeout bounds the whole request, body included: nothing served
	// takes more than a few kilobytes.
	readTimeout = 10 * time.Second
	// writeTimeout runs from the end of the headers to the end of the
	// answer: the longest a handler waits is /calc's 3 s.
	writeTimeout = 20 * time.Second
	// idleTimeout bounds a kept-alive connection between requests; the
	// dashboard's page asks every second.
	idleTimeout = 60 * time.Second
	// maxHeaderBytes bounds the request line and headers (net/http's
	// default is 1 MB).
	maxHeaderBytes = 64 << 10
	// maxBodyBytes bounds a request's body; a handler may bound it lower
	// (/calc: 4 KB).
	maxBodyBytes = 64 << 10
	// maxInFlight is how many requests are served at once, the probes
	// aside; beyond, a request gets 503 at once and its connection is
	// closed. A person's page takes one or two, a scrape one.
	maxInFlight = 256
)

// isProbe says whether a request is a probe's: /healthz and /readyz are
// answered whatever else is in progress, since a kubelet that gets no
// answer restarts the pod or takes it out of service. They are cheap, read
// no body, and are bounded by the timeouts like any request.
func isProbe(r *http.Request) bool {
	return r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
}

// limit serves a request within the bounds: a body of maxBodyBytes at
// most, and, the probes aside, a slot of maxInFlight.
func (h *HTTP) limit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if !isProbe(r) {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		default:
			// Closing the connection frees its socket now, rather than
			// after whatever body it still means to send.
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			text(w, http.StatusServiceUnavailable, "busy: too many requests in progress")
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

func (h *HTTP) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, reason := h.ready()
	switch {
	case !ok:
		text(w, http.StatusServiceUnavailable, "not ready: "+oneLine(reason))
	case reason != "":
		// Still 200: a probe acts on the code, a person reads the note.
		text(w, http.StatusOK, "ok, "+oneLine(reason))
	default:
		text(w, http.StatusOK, "ok")
	}
}

func (h *HTTP) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<title>%[1]s</title>\n<h1>%[1]s</h1>\n<ul>\n", html.EscapeString(h.name))
	for _, p := range slices.Sorted(slices.Values(h.paths)) {
		fmt.Fprintf(&b, "<li><a href=\"%[1]s\">%[1]s</a></li>\n", html.EscapeString(strings.TrimPrefix(p, "/")))
	}
	b.WriteString("</ul>\n")
	_, _ = w.Write([]byte(b.String()))
}

// text answers with one line of plain text.
func text(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // a probe must see now, not a cache
	w.WriteHeader(code)
	_, _ = w.Write([]byte(line + "\n"))
}

// oneLine keeps a reason to one line, whatever it holds.
func oneLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		s = "no reason given"
	}
	return s
}

// Start listens on addr (TCP; port 0 picks one) and serves until Stop. It
// returns the address it listens on.
func (h *HTTP) Start(addr string) (net.Addr, error) {
	handler := h.Handler()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
	done := make(chan struct{})
	h.mu.Lock()
	h.srv, h.done = srv, done
	h.mu.Unlock()
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("http", "err", err)
		}
	}()
	// "metrics serving" is the line scripts and tests wait for; the paths
	// say what else the listener answers.
	slog.Info("metrics serving", "addr", ln.Addr().String(), "path", "/metrics", "also", "/healthz /readyz /")
	return ln.Addr(), nil
}

// Stop ends Start's listener, letting requests in progress finish for up
// to two seconds, then closing every connection still open (a client
// still sending a body would otherwise hold its own until readTimeout). It
// does nothing if Start was not called.
func (h *HTTP) Stop() {
	h.mu.Lock()
	srv, done := h.srv, h.done
	h.srv = nil
	h.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
	<-done
}
