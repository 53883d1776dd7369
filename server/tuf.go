package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
)

const (
	cacheImmutable = "public, max-age=31536000, immutable"
	// Short enough that clients see a new timestamp within seconds of its publication.
	cacheShort = "public, max-age=5"
)

// The Cache-Control values as header map values, shared by every response.
var (
	cacheImmutableH = []string{cacheImmutable}
	cacheShortH     = []string{cacheShort}
)

func errNotFound(path string) error {
	return api.Errorf(api.CodeNotFound, "nothing is served at %.200q", path)
}

func errMethod(method, path string) error {
	return api.Errorf(api.CodeMethodNotAllowed, "method %s is not allowed on %.200q", method, path)
}

func (s *Server) routeTUF(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(corsRead)
		r.Get(metadataRoute, s.getMetadata)
		r.Head(metadataRoute, s.getMetadata)
		r.Options(metadataRoute, preflight)
		r.Get("/targets/{project}/{version}/{file}", s.getTarget)
		r.Head("/targets/{project}/{version}/{file}", s.getTarget)
		r.Options("/targets/{project}/{version}/{file}", preflight)
	})
}

// corsRead lets browser TUF clients on any origin (the web UI's repository browser on
// another Cairn, tuf-js in a page) read metadata and targets. They are public and carry
// no credentials, so "*" exposes nothing a plain GET does not.
func corsRead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Access-Control-Allow-Origin"] = corsAny
		h["Access-Control-Expose-Headers"] = corsExpose
		next.ServeHTTP(w, r)
	})
}

// preflight answers a CORS preflight: reads only, with the headers a TUF client may send.
func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD")
	h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

var (
	corsAny    = []string{"*"}
	corsExpose = []string{"ETag, Content-Length, Content-Range, Accept-Ranges"}
)

// getMetadata is the routed form of serveMetadata, for the requests the lean path
// (leanRouter) leaves to the router: escaped paths and preflights.
func (s *Server) getMetadata(w http.ResponseWriter, r *http.Request) {
	s.serveMetadata(w, r, chi.URLParam(r, "file"))
}

// metadataPrefix is where TUF metadata is served; metadataRoute is its route pattern, also
// the route label of its metrics on the lean path.
const (
	metadataPrefix = "/metadata/"
	metadataRoute  = metadataPrefix + "{file}"
)

// leanRouter answers GET and HEAD of /metadata/<file> before the router: the files every
// client polls (timestamp.json, then the snapshot it names) are served with no routing,
// no wrapped ResponseWriter and no per-request allocation of their own (BENCHMARKS.md §1).
// Metrics are counted as for the routed path, on counters bound once, and the request
// limits hold as on every route. Everything else, including paths with escapes, goes to
// the router, which it embeds so that it still lists every route (chi.Walk).
type leanRouter struct {
	chi.Router
	s *Server
}

func (l leanRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	file, ok := strings.CutPrefix(r.URL.Path, metadataPrefix)
	if !ok || r.URL.RawPath != "" || strings.IndexByte(file, '/') >= 0 ||
		(r.Method != http.MethodGet && r.Method != http.MethodHead) ||
		// The request limits (limitRequests) as the router applies them: a request with a
		// body (its read deadlines), one on a probe connection, one beyond MaxInflight
		// go to the router, which answers them as it answers any other.
		(r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0) ||
		r.Context().Value(probeConnKey{}) != nil {
		l.Router.ServeHTTP(w, r)
		return
	}
	if max := int64(l.s.limits.MaxInflight); max > 0 {
		if l.s.inflight.Add(1) > max {
			l.s.inflight.Add(-1)
			l.Router.ServeHTTP(w, r)
			return
		}
		defer l.s.inflight.Add(-1)
	}
	start := time.Now()
	h := w.Header()
	h["Access-Control-Allow-Origin"] = corsAny
	h["Access-Control-Expose-Headers"] = corsExpose
	code := l.s.serveMetadata(w, r, file)
	l.s.metrics.metadataRoute.observe(r.Method, code, start)
}

// serveMetadata serves timestamp.json, root.json and <version>.<role>.json (TUF 5.x with
// consistent snapshots), and returns the status it answered. Unknown versions are 404:
// clients probe N+1.root.json.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, file string) int {
	h := s.cache.Head()
	if h == nil {
		return s.writeError(w, r, store.ErrNotBootstrapped)
	}
	switch file {
	case "timestamp.json":
		if age, stale := s.stale(); stale {
			return s.writeStale(w, r, age)
		}
		return serveMeta(w, r, h.timestamp, cacheShortH)
	case "root.json":
		return serveMeta(w, r, h.root, cacheShortH)
	}
	base, ok := strings.CutSuffix(file, ".json")
	vs, role, ok2 := strings.Cut(base, ".")
	if !ok || !ok2 {
		return s.writeError(w, r, errNotFound(r.URL.Path))
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || v < 1 || vs[0] == '0' || vs[0] == '+' {
		// Canonical decimals only (no "01", no "+1"): one URL per version.
		return s.writeError(w, r, errNotFound(r.URL.Path))
	}
	var f *metaFile
	switch {
	case role == tufrepo.RoleSnapshot && v == h.snapshot.version:
		f = h.snapshot
	case role == tufrepo.RoleTimestamp && v == h.timestamp.version:
		f = h.timestamp
	case !tufrepo.IsReservedRole(role) && !tufrepo.IsShardRole(role) && !tufrepo.IsAttestationShardRole(role) && tufrepo.ValidateProjectName(role) != nil:
		return s.writeError(w, r, errNotFound(r.URL.Path))
	default:
		f, err = s.metaVersion(r.Context(), role, v)
		if err != nil {
			if age, stale := s.stale(); stale || errors.Is(err, context.DeadlineExceeded) {
				return s.writeStale(w, r, age)
			}
			return s.writeError(w, r, err)
		}
	}
	return serveMeta(w, r, f, cacheImmutableH)
}

// metaLookup bounds a read of one metadata version from the database, so that a client
// probing N+1.root.json through a replica cut off from PostgreSQL gets an answer.
const metaLookup = 5 * time.Second

// metaVersion returns a published version: from memory, or from the database unless this
// replica knows it cannot reach it.
func (s *Server) metaVersion(ctx context.Context, role string, v int64) (*metaFile, error) {
	if f := s.cache.cached(role, v); f != nil {
		return f, nil
	}
	if _, stale := s.stale(); stale {
		return nil, errStale
	}
	ctx, cancel := context.WithTimeout(ctx, metaLookup)
	defer cancel()
	return s.cache.get(ctx, role, v)
}

var errStale = errors.New("the database is unreachable")

// writeStale answers for a replica that has lost the database for longer than
// MaxStaleness.
func (s *Server) writeStale(w http.ResponseWriter, r *http.Request, age time.Duration) int {
	w.Header().Set("Retry-After", "1")
	return s.writeError(w, r, api.Errorf(api.CodeUnavailable, "this replica has not reached the database for %s, so its metadata may be older than other replicas'; retry (the load balancer should send you to another replica)", age.Truncate(time.Second)))
}

// serveMeta answers with one metadata file and returns the status. The common case
// assigns header values built once per version (metaFile) and writes the body with one
// Write: ServeContent, which copies through a 32 KB buffer per request, was half of the CPU
// of serving a snapshot (BENCHMARKS.md); it is kept for Range requests.
func serveMeta(w http.ResponseWriter, r *http.Request, f *metaFile, cacheControl []string) int {
	hd := w.Header()
	hd["Content-Type"] = contentTypeJSON
	hd["Cache-Control"] = cacheControl
	if len(r.Header["Range"]) > 0 {
		hd["Etag"] = f.etagH
		sw := &statusWriter{ResponseWriter: w}
		http.ServeContent(sw, r, "", time.Time{}, bytes.NewReader(f.raw))
		return sw.code()
	}
	// Compressed once per version (metaFile.gzipped), never per request. TUF clients check
	// lengths and hashes on the decoded bytes.
	body, etag, length := f.raw, f.etagH, f.lengthH
	if len(f.raw) >= gzipMin {
		hd["Vary"] = varyAcceptEncoding
		if acceptsGzip(r.Header["Accept-Encoding"]) {
			if gz := f.gzipped(); gz != nil {
				body, etag, length = gz.raw, gz.etagH, gz.lengthH
				hd["Content-Encoding"] = contentEncodingGzip
			}
		}
	}
	hd["Etag"] = etag
	hd["Accept-Ranges"] = acceptRanges
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatch(inm, etag[0]) {
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	hd["Content-Length"] = length
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return http.StatusOK
}

// acceptsGzip reports whether Accept-Encoding values allow gzip (a q of 0 refuses it). It
// walks the values without splitting them, so that the GET path allocates nothing.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q := strings.TrimSpace(params)
			if q, ok := strings.CutPrefix(q, "q="); ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

// etagMatch implements If-None-Match's weak comparison for our strong ETags.
func etagMatch(values []string, etag string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == etag || t == "*" {
				return true
			}
		}
	}
	return false
}

var (
	contentTypeJSON     = []string{"application/json"}
	acceptRanges        = []string{"bytes"}
	varyAcceptEncoding  = []string{"Accept-Encoding"}
	contentEncodingGzip = []string{"gzip"}
)

// getTarget serves /targets/<project>/<version>/<sha256>.<filename>: only a published
// file under its own published hash; anything else is 404, so the URL space cannot be
// used to fetch arbitrary blobs.
func (s *Server) getTarget(w http.ResponseWriter, r *http.Request) {
	project, version, file := chi.URLParam(r, "project"), chi.URLParam(r, "version"), chi.URLParam(r, "file")
	sum, filename, ok := strings.Cut(file, ".")
	if project == tufrepo.OwnTargetPrefix {
		s.getOwnTarget(w, r, project+"/"+version+"/"+filename, sum)
		return
	}
	if !ok || !api.ValidSHA256Hex(sum) || tufrepo.ValidateProjectName(project) != nil ||
		tufrepo.ValidateComponent("version", version, tufrepo.MaxVersionLength) != nil ||
		tufrepo.ValidateComponent("file", filename, tufrepo.MaxFilenameLength) != nil {
		s.writeError(w, r, errNotFound(r.URL.Path))
		return
	}
	path := tufrepo.TargetPath(project, version, filename)
	t, err := s.db.PublishedTarget(r.Context(), path)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if t.SHA256 != sum {
		s.writeError(w, r, api.Errorf(api.CodeNotFound, "target %q is not published with sha256 %s", path, sum))
		return
	}
	f, _, err := s.blobs.Content.Open(r.Context(), "sha256:"+sum)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("opening blob of published target %s: %w", path, err))
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Cache-Control", cacheImmutable)
	hd.Set("ETag", `"sha256:`+sum+`"`)
	http.ServeContent(w, r, "", time.Time{}, f)
}
