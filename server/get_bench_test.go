package server

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/tufrepo"
)

// discardRW is the cheapest ResponseWriter: it keeps its header map between requests (as
// net/http's own pooling does not), so allocs/op counts only the handler's own.
type discardRW struct {
	h    http.Header
	code int
	n    int
}

func (w *discardRW) Header() http.Header         { return w.h }
func (w *discardRW) WriteHeader(code int)        { w.code = code }
func (w *discardRW) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// benchServer is a Server without a database whose head holds a timestamp of 473 bytes and
// a snapshot of 45,524 bytes, the sizes BENCHMARKS.md §1 measures.
func benchServer(b testing.TB) *Server {
	b.Helper()
	cfg := DefaultConfig()
	cfg.MaxStaleness = 0
	s := New(cfg, nil, nil, tufrepo.Signers{}, slog.New(slog.DiscardHandler), time.Now)
	file := func(n int, v int64) *metaFile {
		raw := bytes.Repeat([]byte("x"), n)
		sum := sha256.Sum256(raw)
		return newMetaFile(raw, sum[:], v, time.Now().Add(time.Hour))
	}
	h := &head{timestamp: file(473, 7), snapshot: file(45524, 7), root: file(2000, 1)}
	s.cache.cur.Store(h)
	s.cache.confirm(time.Now())
	return s
}

// BenchmarkMetadataGET serves the head's files through the whole handler (router,
// middleware, metrics) to a writer that costs nothing.
func BenchmarkMetadataGET(b *testing.B) {
	s := benchServer(b)
	for _, path := range []string{"/metadata/timestamp.json", "/metadata/7.snapshot.json"} {
		b.Run(path, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			w := &discardRW{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				s.Handler().ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("GET %s: %d", path, w.code)
				}
			}
		})
	}
}

// BenchmarkInstrument is the metrics middleware alone, around a handler that does nothing.
func BenchmarkInstrument(b *testing.B) {
	s := benchServer(b)
	h := s.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	req := httptest.NewRequest(http.MethodGet, "/api/v1/status", nil)
	w := &discardRW{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
