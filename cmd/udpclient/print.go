package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/discal/discal/codec"
	"github.com/discal/discal/udpclient"
)

// printer turns results into output lines.
type printer struct {
	verbose bool // text: add " (server s1)"
	json    bool // one JSON object a line instead of text
}

// format is the one line printed for a result, without its line end.
func (p printer) format(r result) string {
	if p.json {
		return jsonLine(r)
	}
	if r.skip {
		return ""
	}
	line := r.ans.Result.String()
	if r.err != nil {
		line = "error: " + errorText(r.err, escape)
	}
	if p.verbose && r.ans.Server != "" {
		line += " (server " + escape(r.ans.Server) + ")"
	}
	return line
}

// errorText is what follows "error: " for err, with the text that came
// from the network passed through esc.
func errorText(err error, esc func(string) string) string {
	var na *udpclient.NoAnswerError
	var e *codec.Error
	switch {
	case errors.As(err, &na) && errors.As(na.Cause, &e):
		// The proxy's own words ("no server available") come first, as
		// they always have; then where they came from.
		return esc(e.Message) + " (from " + strings.Join(na.Proxies, ", ") + ")"
	case errors.As(err, &na):
		return strings.TrimPrefix(na.Error(), "udpclient: ")
	case errors.As(err, &e):
		return esc(e.Message)
	}
	return esc(strings.TrimPrefix(err.Error(), "udpclient: "))
}

// escape makes text from the network safe to print on a terminal and
// keeps it on one line: control characters (escape sequences, line ends),
// other invisible formatting characters and invalid UTF-8 are written as
// Go escapes (\x1b, \n, \u202e). Backslashes are left alone: this is for
// the eye, not to be read back.
func escape(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !printable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case printable(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r) // '\n', '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func raw(s string) string { return s }

func printable(r rune) bool { return r == ' ' || unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r) }

// jsonRecord is the -json form of one answer.
type jsonRecord struct {
	Expr      string          `json:"expr"`
	Result    json.RawMessage `json:"result,omitempty"` // a JSON number, the text form's digits
	Error     *jsonError      `json:"error,omitempty"`
	Server    string          `json:"server,omitempty"`
	Proxy     string          `json:"proxy,omitempty"`
	ID        string          `json:"id,omitempty"` // 16 hex digits; absent when nothing was sent
	Tries     int             `json:"tries,omitempty"`
	LatencyMS *float64        `json:"latency_ms,omitempty"`
}

// jsonError is an error: Code is discal's error code (codec.Code), 0 for
// an error of the client's own such as no answer.
type jsonError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func jsonLine(r result) string {
	rec := jsonRecord{Expr: r.expr}
	if !r.skip {
		rec.Server, rec.Proxy, rec.Tries = r.ans.Server, r.ans.Proxy, r.ans.Tries
		if r.ans.Tries > 0 {
			rec.ID = fmt.Sprintf("%016x", r.ans.ID)
			ms := math.Round(float64(r.ans.Latency)/1e3) / 1e3
			rec.LatencyMS = &ms
		}
		if r.err == nil {
			rec.Result = r.ans.Result.AppendText(nil)
		} else {
			rec.Error = &jsonError{Message: errorText(r.err, raw)} // encoding/json escapes
			var e *codec.Error
			if errors.As(r.err, &e) {
				rec.Error.Code = int(e.Code)
			}
		}
	}
	b, err := json.Marshal(rec)
	if err != nil { // a result that is no JSON number; cannot happen for finite numbers
		return fmt.Sprintf(`{"expr":%q,"error":{"code":0,"message":%q}}`, r.expr, err.Error())
	}
	return string(b)
}
