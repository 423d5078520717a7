package dashboard

import (
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/discal/discal/udpproxy"
)

// Source is what the dashboard shows: *udpproxy.Proxy is one.
type Source interface {
	Stats() udpproxy.Stats
}

//go:embed assets
var assets embed.FS

// Handler serves the dashboard. Make one with New.
type Handler struct {
	src  Source
	calc *calculator
	mux  *http.ServeMux
	page []byte
	log  *slog.Logger
}

// Patterns are the routes a Handler serves, in net/http ServeMux form, for
// mounting it beside other handlers on one mux.
var Patterns = []string{"GET /{$}", "GET /status.json", "POST /calc", "GET /dashboard/"}

// New returns the dashboard for src. calcAddr is the proxy's client port
// (HOST:PORT), where /calc sends expressions, as any client would.
func New(src Source, calcAddr string) *Handler {
	page, err := assets.ReadFile("assets/index.html")
	if err != nil {
		panic("dashboard: the embedded page is missing: " + err.Error()) // a build without the assets
	}
	h := &Handler{src: src, calc: newCalculator(calcAddr), mux: http.NewServeMux(), page: page, log: slog.Default()}
	static, _ := fs.Sub(assets, "assets") // cannot fail: the directory is embedded
	h.mux.HandleFunc("GET /{$}", h.serveIndex)
	h.mux.HandleFunc("GET /status.json", h.serveStatus)
	h.mux.HandleFunc("POST /calc", h.serveCalc)
	h.mux.Handle("GET /dashboard/", http.StripPrefix("/dashboard/", http.FileServerFS(static)))
	return h
}

// ServeHTTP serves /, /status.json, /calc and /dashboard/; anything else
// is not found.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	noCache(w)
	_, _ = w.Write(h.page)
}

func (h *Handler) serveStatus(w http.ResponseWriter, _ *http.Request) {
	noCache(w)
	h.writeJSON(w, http.StatusOK, h.src.Stats())
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
