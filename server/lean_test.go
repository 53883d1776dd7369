package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLeanMetadataPath checks that metadata answered before the router (leanRouter) has
// the routed path's headers and is counted under the same route label.
func TestLeanMetadataPath(t *testing.T) {
	s := benchServer(t)
	h := s.cache.Head()
	for _, c := range []struct {
		name, method, path, ifNoneMatch string
		status                          int
		body                            []byte
	}{
		{"timestamp", http.MethodGet, "/metadata/timestamp.json", "", 200, h.timestamp.raw},
		{"head snapshot", http.MethodGet, "/metadata/7.snapshot.json", "", 200, h.snapshot.raw},
		{"HEAD", http.MethodHead, "/metadata/timestamp.json", "", 200, nil},
		{"not modified", http.MethodGet, "/metadata/timestamp.json", `"other", ` + h.timestamp.etag, 304, nil},
		{"not a metadata name", http.MethodGet, "/metadata/timestamp.txt", "", 404, nil},
		{"leading zero", http.MethodGet, "/metadata/07.snapshot.json", "", 404, nil},
		{"plus sign", http.MethodGet, "/metadata/+7.snapshot.json", "", 404, nil},
		// Escaped paths go to the router, which matches the raw path: 404 as before.
		{"escaped, through the router", http.MethodGet, "/metadata/timestamp%2Ejson", "", 404, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			code := strconv.Itoa(c.status)
			counter := s.metrics.requests.WithLabelValues(metadataRoute, c.method, code)
			before := testutil.ToFloat64(counter)
			req := httptest.NewRequest(c.method, c.path, nil)
			if c.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", c.ifNoneMatch)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, rec.Code, c.status, rec.Body)
			}
			if got := testutil.ToFloat64(counter) - before; got != 1 {
				t.Errorf("cairn_http_requests_total{route=%q,method=%q,code=%q} grew by %v, want 1", metadataRoute, c.method, code, got)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin %q, want *", got)
			}
			if c.status != 200 {
				return
			}
			if c.body != nil && rec.Body.String() != string(c.body) {
				t.Errorf("body of %d bytes, want %d", rec.Body.Len(), len(c.body))
			}
			for k, want := range map[string]string{"Content-Type": "application/json", "Accept-Ranges": "bytes", "Content-Length": ""} {
				if got := rec.Header().Get(k); got == "" || (want != "" && got != want) {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
		})
	}
}

// The lean path keeps the request limits of every route (limitRequests): beyond
// --max-inflight, and on a connection admitted only for probes, metadata is refused too.
func TestLeanMetadataPathKeepsLimits(t *testing.T) {
	s := benchServer(t)
	for _, tt := range []struct {
		name   string
		setup  func(*http.Request) *http.Request
		detail string
	}{
		{"beyond max-inflight", func(r *http.Request) *http.Request {
			s.inflight.Store(int64(s.limits.MaxInflight))
			return r
		}, "--max-inflight"},
		{"probe connection", func(r *http.Request) *http.Request {
			s.inflight.Store(0)
			return r.WithContext(context.WithValue(r.Context(), probeConnKey{}, true))
		}, "--max-connections"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.setup(httptest.NewRequest(http.MethodGet, "/metadata/timestamp.json", nil))
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), tt.detail) {
				t.Errorf("GET timestamp.json: %d %s; want 503 naming %s", rec.Code, rec.Body, tt.detail)
			}
		})
	}
	s.inflight.Store(0)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metadata/timestamp.json", nil))
	if rec.Code != http.StatusOK || s.inflight.Load() != 0 {
		t.Errorf("GET timestamp.json within the limits: %d, %d requests left counted in flight", rec.Code, s.inflight.Load())
	}
}
