package dashboard

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/discal/discal/internal/cli"
	"github.com/discal/discal/udpproxy"
)

// Source is what the dashboard shows: *udpproxy.Proxy is one. Ready is
// what /readyz says (cli.ReadyFunc); the page's banner shows the same
// verdict, so that the two never disagree.
type Source interface {
	Stats() udpproxy.Stats
	Ready() (ok bool, reason string)
}

//go:embed assets
var assets embed.FS

// Config is what a dashboard needs beside its Source. Zero values mean the
// defaults.
type Config struct {
	// CalcAddr is the proxy's client port (HOST:PORT), where /calc sends
	// expressions, as any client would.
	CalcAddr string
	// Hosts are the names, besides IP literals and localhost, that the
	// dashboard answers to (udpproxy -http-host): a request with any other
	// Host is refused, as DNS rebinding sends. Default: none.
	Hosts []string
	// Version and Commit name the build the page's header shows; the
	// default is the binary's own (cli.Build, as in discal_build_info).
	Version, Commit string
	// Started is when the proxy started, for the uptime the header shows;
	// the default is the process's start.
	Started time.Time
	// Logger is where the dashboard's own errors go; slog.Default() if nil.
	Logger *slog.Logger
}

// fill sets the defaults of what was not given.
func (c *Config) fill() {
	b := cli.Build()
	if c.Version == "" {
		c.Version = b.Version
	}
	if c.Commit == "" {
		c.Commit = b.Commit
	}
	if c.Started.IsZero() {
		c.Started = cli.Started()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Handler serves the dashboard. Make one with New or NewWithConfig.
type Handler struct {
	src   Source
	cfg   Config
	calc  *calculator
	mux   *http.ServeMux
	hosts hosts
	csrf  *http.CrossOriginProtection
	page  []byte
	log   *slog.Logger
}

// Patterns are the routes a Handler serves, in net/http ServeMux form, for
// mounting it beside other handlers on one mux.
var Patterns = []string{"GET /{$}", "GET /status.json", "POST /calc", "GET /dashboard/"}

// New returns the dashboard for src with the defaults. calcAddr is the
// proxy's client port (HOST:PORT), where /calc sends expressions, as any
// client would.
func New(src Source, calcAddr string) *Handler {
	return NewWithConfig(src, Config{CalcAddr: calcAddr})
}

// NewWithConfig returns the dashboard for src as cfg says.
func NewWithConfig(src Source, cfg Config) *Handler {
	page, err := assets.ReadFile("assets/index.html")
	if err != nil {
		panic("dashboard: the embedded page is missing: " + err.Error()) // a build without the assets
	}
	cfg.fill()
	h := &Handler{src: src, cfg: cfg, calc: newCalculator(src, cfg.CalcAddr), mux: http.NewServeMux(),
		hosts: newHosts(cfg.Hosts), csrf: http.NewCrossOriginProtection(), page: page, log: cfg.Logger}
	static, _ := fs.Sub(assets, "assets") // cannot fail: the directory is embedded
	h.mux.HandleFunc("GET /{$}", h.serveIndex)
	h.mux.HandleFunc("GET /status.json", h.serveStatus)
	h.mux.HandleFunc("POST /calc", h.serveCalc)
	h.mux.Handle("GET /dashboard/", http.StripPrefix("/dashboard/", http.FileServerFS(static)))
	return h
}

// ServeHTTP serves /, /status.json, /calc and /dashboard/; anything else
// is not found. A request with a Host the dashboard does not answer to, or
// a POST another web site made a browser send, gets 403 (see guard.go).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.guard(r); err != nil {
		h.writeJSON(w, http.StatusForbidden, struct {
			Error string `json:"error"`
		}{err.Error()})
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	noCache(w)
	_, _ = w.Write(h.page)
}

// proxyJSON is what /status.json says beside the proxy's Stats: what the
// page's header and banner show. Keys are only ever added.
type proxyJSON struct {
	Version       string  `json:"version"`
	Commit        string  `json:"commit"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Ready         bool    `json:"ready"`        // what /readyz answers: true for 200
	ReadyReason   string  `json:"ready_reason"` // its reason: why not, or "degraded: ..."; empty when all is well
}

func (h *Handler) serveStatus(w http.ResponseWriter, _ *http.Request) {
	noCache(w)
	p := proxyJSON{Version: h.cfg.Version, Commit: h.cfg.Commit}
	p.UptimeSeconds = math.Round(time.Since(h.cfg.Started).Seconds()*10) / 10
	p.Ready, p.ReadyReason = h.src.Ready()
	doc, err := merge(p, h.src.Stats())
	if err != nil {
		h.log.Error("dashboard: encoding the status", "err", err)
		http.Error(w, "cannot encode the status", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(doc, '\n'))
}

// merge writes a and b, each of which encodes as a JSON object, as one
// object with the keys of both. Stats has a MarshalJSON of its own, so a
// struct that embeds it would encode as Stats alone.
func merge(a, b any) ([]byte, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	if len(ja) < 2 || ja[0] != '{' || len(jb) < 2 || jb[0] != '{' {
		return nil, errors.New("dashboard: merge: not two JSON objects")
	}
	if len(jb) == 2 { // {}
		return ja, nil
	}
	if len(ja) == 2 {
		return jb, nil
	}
	return append(append(ja[:len(ja)-1], ','), jb[1:]...), nil
}

// writeJSON answers with v as JSON.
func (h *Handler) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("dashboard: encoding an answer", "err", err)
		http.Error(w, "cannot encode the answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// noCache keeps browsers and proxies from serving an old page or status:
// both change with every release and every second.
func noCache(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }
