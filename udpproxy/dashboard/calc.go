package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
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
	addr string
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

func newCalculator(addr string) *calculator {
	return &calculator{addr: addr, slots: make(chan struct{}, calcSlots)}
}

func (h *Handler) serveCalc(w http.ResponseWriter, r *http.Request) {
	expr, err := readExpr(w, r)
	if err != nil {
		h.writeJSON(w, http.StatusBadRequest, calcAnswer{Error: err.Error()})
		return
	}
	a := calcAnswer{Expr: expr}
	req, err := codec.ParseExpr(expr)
	if err != nil {
		a.Error, a.Code = err.Error(), int(codec.AsError(err).Code)
		h.writeJSON(w, http.StatusBadRequest, a)
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

// readExpr takes the expression from a JSON body {"expr": "..."} or from
// a form field expr.
func readExpr(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxCalcBody)
	var expr string
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		var body struct {
			Expr string `json:"expr"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return "", fmt.Errorf("dashboard: the body is not {\"expr\": \"...\"}: %w", err)
		}
		expr = body.Expr
	} else {
		if err := r.ParseForm(); err != nil {
			return "", fmt.Errorf("dashboard: reading the form: %w", err)
		}
		expr = r.PostForm.Get("expr")
	}
	if expr = strings.TrimSpace(expr); expr == "" {
		return "", errors.New("dashboard: no expression: send {\"expr\": \"6 * 7\"}")
	}
	return expr, nil
}

// errNoAnswer is the answer to a calculation the proxy never answered.
var errNoAnswer = errors.New("dashboard: no answer from the proxy")

// exchange sends req to the proxy and waits for its reply, sending it again
// with the same ID every calcRetry; the proxy and the servers treat the
// copies as one request.
func (c *calculator) exchange(ctx context.Context, id uint64, req codec.Request) (codec.Reply, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", c.addr)
	if err != nil {
		return codec.Reply{}, fmt.Errorf("dashboard: %w", err)
	}
	defer conn.Close()
	pkt := codec.AppendRequest(make([]byte, 0, codec.RequestSize), id, req)
	buf := make([]byte, codec.MaxDatagram+1)
	deadline, _ := ctx.Deadline() // always set: serveCalc gives it one
	for ctx.Err() == nil {
		if _, err := conn.Write(pkt); err != nil {
			return codec.Reply{}, fmt.Errorf("dashboard: sending to the proxy at %s: %w", c.addr, err)
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
			return codec.Reply{}, fmt.Errorf("dashboard: the proxy at %s: %w", c.addr, err)
		}
	}
	return codec.Reply{}, fmt.Errorf("%w at %s", errNoAnswer, c.addr)
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
