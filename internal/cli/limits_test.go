package cli

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHTTPInFlight: with every slot held by a request in progress, another
// request gets 503 at once and its connection is closed, while /healthz and
// /readyz still answer; once a slot is free, requests are served again.
func TestHTTPInFlight(t *testing.T) {
	h, err := NewHTTP("udpx", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.slots = make(chan struct{}, 2) // two, not maxInFlight, to fill them cheaply
	entered, release := make(chan struct{}), make(chan struct{})
	h.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	h.Handle("GET /fast", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "fast") }))
	addr, err := h.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	base := "http://" + addr.String()
	slow := make(chan string, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(base + "/slow")
			if err != nil {
				slow <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			slow <- string(b)
		}()
		<-entered
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/fast", 503, "busy: too many requests in progress\n"},
		{"/metrics", 503, "busy: too many requests in progress\n"},
		{"/healthz", 200, "ok\n"},
		{"/readyz", 200, "ok\n"},
	} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(b) != tc.body || (tc.code == 503) != resp.Close {
			t.Errorf("GET %s with the slots full = %d %q (close %v), want %d %q, closed if 503",
				tc.path, resp.StatusCode, b, resp.Close, tc.code, tc.body)
		}
	}
	close(release)
	for range 2 {
		if got := <-slow; got != "done" {
			t.Errorf("a slow request got %q", got)
		}
	}
	if code, body := get(t, base+"/fast"); code != 200 || body != "fast" {
		t.Errorf("GET /fast with the slots free = %d %q", code, body)
	}
}

// TestHTTPBounds: a body over maxBodyBytes is cut short for the handler
// that reads it, and headers over maxHeaderBytes get 431.
func TestHTTPBounds(t *testing.T) {
	h, err := NewHTTP("udpx", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "too big", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "ok")
	}))
	addr, err := h.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	for _, tc := range []struct {
		name   string
		body   int
		header int
		code   int
	}{
		{"small", 1003, 0, 200},
		{"at the bound", maxBodyBytes, 0, 200},
		{"over the bound", maxBodyBytes + 1, 0, 413},
		{"headers over the bound", 1, maxHeaderBytes + 4096, 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			// Written by hand: net/http's client refuses to send headers
			// this large itself.
			go func() {
				w := bufio.NewWriter(conn)
				w.WriteString("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
				if tc.header > 0 {
					w.WriteString("X-Big: " + strings.Repeat("a", tc.header) + "\r\n")
				}
				w.WriteString("Content-Length: " + strconv.Itoa(tc.body) + "\r\n\r\n" + strings.Repeat("b", tc.body))
				w.Flush()
			}()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("%s, want %d", resp.Status, tc.code)
			}
		})
	}
}
