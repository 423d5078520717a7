package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/discal/discal/codec"
)

// calcAnswer is the answer to POST /calc. Exactly one of Result and Error
// is set.
type calcAnswer struct {
	Expr      string  `json:"expr"`
	Result    string  `json:"result,omitempty"` // as the text form prints it: "42", "3.5"
	Error     string  `json:"error,omitempty"`
	Code      int     `json:"code,omitempty"`   // the error's codec.Code; 0 for errors of the dashboard's own
	Server    string  `json:"server,omitempty"` // the server that computed it
	ID        string  `json:"id,omitempty"`     // the request's ID as sent to the proxy, 16 hex digits
	Latency   string  `json:"latency,omitempty"`
	LatencyUS float64 `json:"latency_us,omitempty"`
}

// calculator sends expressions to the proxy's client port, in the binary
// form, as udpclient does.
type calculator struct {
	addr func() string // the port, HOST:PORT
	// slots bounds the exchanges in flight: each holds a socket for up to
	// calcTimeout, and a page that loops on /calc must not take them all.
	slots chan struct{}
}

// calcSlots is how many /calc requests may wait for the proxy at once; more
// are answered 503 at once. A person typing needs one.
const calcSlots = 16

// calcTimeout is how long /calc waits for an answer in all, and calcRetry
// how long each try waits before the request is sent again with the same
// ID. Both are generous for a proxy a datagram away, and short for a
// person waiting.
const (
	calcTimeout = 3 * time.Second
	calcRetry   = time.Second
)

// maxCalcBody bounds what /calc reads: an expression is a few dozen bytes.
const maxCalcBody = 4096

// addrSource is a Source that knows the port it serves on:
// *udpproxy.Proxy, once it serves.
type addrSource interface {
	Addr() net.Addr
}

// newCalculator sends to addr. When addr's port is 0 (the proxy was told
// -addr 127.0.0.1:0) or addr is empty, the port is the one the proxy took,
// which src knows only once it serves: it is asked at each calculation.
func newCalculator(src Source, addr string) *calculator {
	c := &calculator{addr: func() string { return addr }, slots: make(chan struct{}, calcSlots)}
	if live, ok := src.(addrSource); ok && anyPort(addr) {
		c.addr = func() string { return calcAddrOf(addr, live.Addr()) }
	}
	return c
}

// anyPort says whether addr leaves the port to the system.
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return addr == "" || (err == nil && (port == "0" || port == ""))
}

// calcAddrOf is where to reach a proxy configured at configured and
// serving at live (nil before it serves): live's port, on configured's
// host unless that is empty or a wildcard, which this process reaches on
// loopback.
func calcAddrOf(configured string, live net.Addr) string {
	if live == nil {
		return configured
	}
	host, _, _ := net.SplitHostPort(configured)
	lhost, port, err := net.SplitHostPort(live.String())
	if err != nil {
		return configured
	}
	if host == "" || net.ParseIP(host).IsUnspecified() {
		host = lhost
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

func (h *Handler) serveCalc(w http.ResponseWriter, r *http.Request) {
	expr, code, err := readExpr(w, r)
	if err != nil {
		h.writeJSON(w, code, calcAnswer{Error: err.Error()})
		return
	}
	a := calcAnswer{Expr: expr}
	req, err := codec.ParseExpr(expr)
	if err != nil {
		ce := codec.AsError(err)
		a.Error, a.Code = ce.Message, int(ce.Code)
		// A syntax error is the request's fault. Anything else the text
		// form refuses (an operand beyond int64: integer overflow) is an
		// answer, and the proxy's port gives it as one, so /calc does too.
		code := http.StatusOK
		if ce.Code == codec.CodeSyntax {
			code = http.StatusBadRequest
		}
		h.writeJSON(w, code, a)
		return
	}
	select {
	case h.calc.slots <- struct{}{}:
		defer func() { <-h.calc.slots }()
	default:
		a.Error = "busy: too many calculations in flight"
		h.writeJSON(w, http.StatusServiceUnavailable, a)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), calcTimeout)
	defer cancel()
	id := rand.Uint64()
	a.ID = fmt.Sprintf("%016x", id)
	start := time.Now()
	reply, err := h.calc.exchange(ctx, id, req)
	if err != nil {
		a.Error = err.Error()
		h.writeJSON(w, http.StatusGatewayTimeout, a)
		return
	}
	rtt := time.Since(start)
	a.Latency, a.LatencyUS = rtt.Round(time.Microsecond).String(), float64(rtt.Microseconds())
	a.Server = reply.Server
	if reply.Err != nil {
		a.Error, a.Code = reply.Err.Message, int(reply.Err.Code)
	} else {
		a.Result = reply.Result.String()
	}
	h.writeJSON(w, http.StatusOK, a)
}

// readExpr takes the expression from the body, whatever its Content-Type
// says: curl -d labels anything a form, and a script or fetch may send
// JSON with no type at all. The body is read as
//
//   - JSON, when it starts with "{": {"expr": "6 * 7"};
//   - a form, when it holds "=", which no expression does: expr=6%2A7.
//     Form encoding makes "+" a space, so "expr=6+7" is "6 7": write %2B,
//     or let curl encode it (--data-urlencode 'expr=6+7');
//   - otherwise, the expression itself, as plain text: 6 * 7.
func readExpr(w http.ResponseWriter, r *http.Request) (string, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCalcBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", http.StatusRequestEntityTooLarge, fmt.Errorf("dashboard: the body is over %d bytes: %w", maxCalcBody, err)
		}
		return "", http.StatusBadRequest, fmt.Errorf("dashboard: reading the body: %w", err)
	}
	expr, err := exprOf(strings.TrimSpace(string(body)))
	if err != nil {
		return "", http.StatusBadRequest, err
	}
	if expr = strings.TrimSpace(expr); expr == "" {
		return "", http.StatusBadRequest, errors.New(`dashboard: no expression: send it as the body (6 * 7), as JSON ({"expr": "6 * 7"}) or as the form field expr`)
	}
	return expr, 0, nil
}

// exprOf is the expression a body holds, by readExpr's rules.
func exprOf(body string) (string, error) {
	switch {
	case strings.HasPrefix(body, "{"):
		var v struct {
			Expr string `json:"expr"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return "", fmt.Errorf(`dashboard: the body is not {"expr": "..."}: %w`, err)
		}
		return v.Expr, nil
	case strings.Contains(body, "="):
		form, err := url.ParseQuery(body)
		if err != nil {
			return "", fmt.Errorf("dashboard: the body is not a form (expr=6%%2B7): %w", err)
		}
		return form.Get("expr"), nil
	}
	return body, nil
}

// exchange sends req to the proxy and waits for its reply, sending it again
// with the same ID every calcRetry; the proxy and the servers treat the
// copies as one request.
func (c *calculator) exchange(ctx context.Context, id uint64, req codec.Request) (codec.Reply, error) {
	addr := c.addr()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return codec.Reply{}, fmt.Errorf("dashboard: %w", err)
	}
	defer conn.Close()
	pkt := codec.AppendRequest(make([]byte, 0, codec.RequestSize), id, req)
	buf := make([]byte, codec.MaxDatagram+1)
	deadline, _ := ctx.Deadline() // always set: serveCalc gives it one
	for ctx.Err() == nil {
		if _, err := conn.Write(pkt); err != nil {
			return codec.Reply{}, fmt.Errorf("dashboard: sending to the proxy at %s: %w", addr, err)
		}
		try := time.Now().Add(calcRetry)
		if try.After(deadline) {
			try = deadline
		}
		_ = conn.SetReadDeadline(try)
		r, err := readReply(conn, id, buf)
		if err == nil {
			return r, nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return codec.Reply{}, fmt.Errorf("dashboard: the proxy at %s: %w", addr, err)
		}
	}
	return codec.Reply{}, fmt.Errorf("%w at %s", errNoAnswer, addr)
}

// readReply reads until the reply to id arrives or the read deadline
// passes; anything else on the socket is skipped.
func readReply(conn net.Conn, id uint64, buf []byte) (codec.Reply, error) {
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return codec.Reply{}, err
		}
		h, err := codec.ParseHeader(buf[:n])
		if err != nil || h.Kind != codec.KindReply || h.ID != id {
			continue
		}
		r, err := codec.DecodeReply(buf[codec.HeaderSize:n])
		if err != nil {
			continue
		}
		return r, nil
	}
}
