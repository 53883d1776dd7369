package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestTimeouts: each limit of NewHTTPClient against a loopback server that misbehaves in
// one way, and the cases that must not be cut: a server-side ?wait= (REST calls that wait
// for a publish), and a caller that is slow to read a body the server sent at once.
func TestTimeouts(t *testing.T) {
	body := strings.Repeat("x", 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/late-headers":
			time.Sleep(1500 * time.Millisecond)
			_, _ = io.WriteString(w, `{}`)
		case "/stall-body":
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, `{"name":"fiftee`) // 15 bytes of a JSON answer
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/big":
			_, _ = io.WriteString(w, body)
		}
	}))
	defer srv.Close()
	lim := Timeouts{Connect: time.Second, Response: time.Second, Read: 500 * time.Millisecond}
	a, err := NewAPI(srv.URL, WithTimeouts(lim))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		phase      string // "" for success
		slowReader bool
	}{
		{"headers later than the response limit", "/late-headers", PhaseResponse, false},
		{"headers late, within ?wait= plus the limit", "/late-headers?wait=1s", "", false},
		{"a body that stops", "/stall-body", PhaseRead, false},
		{"a slow reader of a body sent at once", "/big", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			var err error
			if c.slowReader {
				var resp *http.Response
				if resp, err = a.hc.Get(srv.URL + c.path); err == nil {
					buf := make([]byte, 8<<10)
					for err == nil {
						time.Sleep(100 * time.Millisecond) // 8 reads: 0.8 s, more than the read limit
						_, err = resp.Body.Read(buf)
					}
					if err == io.EOF {
						err = nil
					}
					resp.Body.Close()
				}
			} else {
				var out map[string]any
				_, err = a.do(context.Background(), request{method: http.MethodGet, url: srv.URL + c.path, out: &out})
			}
			took := time.Since(start)
			var te *TimeoutError
			switch {
			case c.phase == "" && err != nil:
				t.Fatalf("refused after %s: %v", took, err)
			case c.phase != "" && (!errors.As(err, &te) || te.Phase != c.phase):
				t.Fatalf("after %s: %v (%T), want a %s timeout", took, err, err, c.phase)
			case c.phase != "" && took > 3*time.Second:
				t.Fatalf("the %s timeout took %s", c.phase, took)
			}
			if te != nil && !strings.Contains(te.Error(), "from "+srv.URL) {
				t.Fatalf("the error does not name the server: %v", te)
			}
		})
	}
}
