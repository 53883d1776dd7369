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

func errNotFound(path string) error {
	return api.Errorf(api.CodeNotFound, "nothing is served at %.200q", path)
}

func errMethod(method, path string) error {
	return api.Errorf(api.CodeMethodNotAllowed, "method %s is not allowed on %.200q", method, path)
}

func (s *Server) routeTUF(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(corsRead)
		r.Get("/metadata/{file}", s.getMetadata)
		r.Head("/metadata/{file}", s.getMetadata)
		r.Options("/metadata/{file}", preflight)
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

// getMetadata serves timestamp.json, root.json and <version>.<role>.json (TUF 5.x with
// consistent snapshots). Unknown versions are 404: clients probe N+1.root.json.
func (s *Server) getMetadata(w http.ResponseWriter, r *http.Request) {
	file := chi.URLParam(r, "file")
	h := s.cache.Head()
	if h == nil {
		s.writeError(w, r, store.ErrNotBootstrapped)
		return
	}
	switch file {
	case "timestamp.json":
		if age, stale := s.stale(); stale {
			s.writeStale(w, r, age)
			return
		}
		serveMeta(w, r, h.timestamp, cacheShort)
		return
	case "root.json":
		serveMeta(w, r, h.root, cacheShort)
		return
	}
	base, ok := strings.CutSuffix(file, ".json")
	vs, role, ok2 := strings.Cut(base, ".")
	if !ok || !ok2 {
		s.writeError(w, r, errNotFound(r.URL.Path))
		return
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	validRole := tufrepo.IsReservedRole(role) || tufrepo.IsShardRole(role) || tufrepo.ValidateProjectName(role) == nil
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != vs || !validRole {
		s.writeError(w, r, errNotFound(r.URL.Path))
		return
	}
	var f *metaFile
	switch {
	case role == tufrepo.RoleSnapshot && v == h.snapshot.version:
		f = h.snapshot
	case role == tufrepo.RoleTimestamp && v == h.timestamp.version:
		f = h.timestamp
	default:
		f, err = s.metaVersion(r.Context(), role, v)
		if err != nil {
			if age, stale := s.stale(); stale || errors.Is(err, context.DeadlineExceeded) {
				s.writeStale(w, r, age)
				return
			}
			s.writeError(w, r, err)
			return
		}
	}
	serveMeta(w, r, f, cacheImmutable)
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
func (s *Server) writeStale(w http.ResponseWriter, r *http.Request, age time.Duration) {
	w.Header().Set("Retry-After", "1")
	s.writeError(w, r, api.Errorf(api.CodeUnavailable, "this replica has not reached the database for %s, so its metadata may be older than other replicas'; retry (the load balancer should send you to another replica)", age.Truncate(time.Second)))
}

func serveMeta(w http.ResponseWriter, r *http.Request, f *metaFile, cacheControl string) {
	hd := w.Header()
	hd["Content-Type"] = contentTypeJSON
	hd["Cache-Control"] = []string{cacheControl}
	if r.Header.Get("Range") != "" {
		hd["Etag"] = []string{f.etag}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.raw))
		return
	}
	// Compressed once per version (metaFile.gzipped), never per request. TUF clients check
	// lengths and hashes on the decoded bytes.
	body, etag := f.raw, f.etag
	if len(f.raw) >= gzipMin {
		hd["Vary"] = varyAcceptEncoding
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			if gz := f.gzipped(); gz != nil {
				body, etag = gz, f.gzEtag
				hd["Content-Encoding"] = contentEncodingGzip
			}
		}
	}
	hd["Etag"] = []string{etag}
	// The common case in one Write: ServeContent copies through a 32 KB buffer per request,
	// which was half of the CPU of serving a snapshot (BENCHMARKS.md).
	hd["Accept-Ranges"] = acceptRanges
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether Accept-Encoding values allow gzip (a q of 0 refuses it).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
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

var (
	contentTypeJSON     = []string{"application/json"}
	acceptRanges        = []string{"bytes"}
	varyAcceptEncoding  = []string{"Accept-Encoding"}
	contentEncodingGzip = []string{"gzip"}
)

// etagMatch implements If-None-Match's weak comparison for our strong ETags.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// getTarget serves /targets/<project>/<version>/<sha256>.<filename>: only a published
// file under its own published hash; anything else is 404, so the URL space cannot be
// used to fetch arbitrary blobs.
func (s *Server) getTarget(w http.ResponseWriter, r *http.Request) {
	project, version, file := chi.URLParam(r, "project"), chi.URLParam(r, "version"), chi.URLParam(r, "file")
	sum, filename, ok := strings.Cut(file, ".")
	if !ok || !store.ValidSHA256(sum) || tufrepo.ValidateProjectName(project) != nil ||
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
	f, err := s.blobs.Open(r.Context(), sum)
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
