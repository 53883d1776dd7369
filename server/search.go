package server

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
)

func (s *Server) routeSearch(r chi.Router) {
	r.Get("/search", s.search)
}

// Bounds of a search request.
const (
	searchDefaultLimit = 50
	searchMaxLimit     = 500
	searchMaxCursor    = 512
)

var hex64RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// searchCursor is the opaque cursor of the next page.
type searchCursor struct {
	Name string    `json:"n,omitempty"`
	Time time.Time `json:"t,omitzero"`
	Path string    `json:"p,omitempty"`
}

// parseSearch validates every parameter of GET /api/v1/search; anything unknown or out of
// bounds is a bad_request naming it.
func parseSearch(r *http.Request) (store.SearchQuery, error) {
	q := store.SearchQuery{Limit: searchDefaultLimit}
	// url.Values would drop a malformed pair silently; refuse it instead.
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, api.Errorf(api.CodeBadRequest, "the search query string is malformed (%v): escape the values", err)
	}
	for k, v := range vals {
		if len(v) != 1 {
			return q, api.Errorf(api.CodeBadRequest, "search parameter %.40q is given %d times: give it once", k, len(v))
		}
		switch k {
		case "q", "key", "sha256", "published_after", "published_before", "limit", "cursor":
		default:
			return q, api.Errorf(api.CodeBadRequest, "unknown search parameter %.40q: use q (name or prefix), key (maintainer key ID), sha256, published_after, published_before (RFC 3339), limit, cursor", k)
		}
	}
	if v := vals.Get("q"); v != "" {
		if len(v) > tufrepo.MaxNameLength || tufrepo.CanonicalProjectName(v) == "" || strings.ContainsAny(v, "/*?[]") {
			return q, api.Errorf(api.CodeBadRequest, "q %.70q is not a project name or prefix (at most %d characters of a-z 0-9 . _ -)", v, tufrepo.MaxNameLength)
		}
		q.Prefix = v
	}
	if v := vals.Get("key"); v != "" {
		v = strings.ToLower(v)
		if !hex64RE.MatchString(v) {
			return q, api.Errorf(api.CodeBadRequest, "key %.70q is not a key ID: give the 64 hex digits 'cairn key list --output json' shows", v)
		}
		q.KeyID = v
	}
	if v := vals.Get("sha256"); v != "" {
		v = strings.ToLower(v)
		if !hex64RE.MatchString(v) {
			return q, api.Errorf(api.CodeBadRequest, "sha256 %.70q is not 64 hex digits", v)
		}
		q.SHA256, _ = hex.DecodeString(v)
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"published_after", &q.After}, {"published_before", &q.Before}} {
		if v := vals.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return q, api.Errorf(api.CodeBadRequest, "%s %.40q is not an RFC 3339 time such as 2026-12-01T00:00:00Z", p.name, v)
			}
			*p.t = t
		}
	}
	if !q.After.IsZero() && !q.Before.IsZero() && !q.After.Before(q.Before) {
		return q, api.Errorf(api.CodeBadRequest, "published_after %s is not before published_before %s", q.After.Format(time.RFC3339), q.Before.Format(time.RFC3339))
	}
	if q.Prefix == "" && q.KeyID == "" && !q.Files() {
		return q, api.Errorf(api.CodeBadRequest, "give at least one search filter: q, key, sha256, published_after or published_before")
	}
	if v := vals.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > searchMaxLimit {
			return q, api.Errorf(api.CodeBadRequest, "limit %.20q: give 1 to %d", v, searchMaxLimit)
		}
		q.Limit = n
	}
	if v := vals.Get("cursor"); v != "" {
		bad := api.Errorf(api.CodeBadRequest, "cursor %.40q is not one this search returned as next: start again without it", v)
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if len(v) > searchMaxCursor || err != nil {
			return q, bad
		}
		var c searchCursor
		if err := json.Unmarshal(raw, &c); err != nil {
			return q, bad
		}
		if q.Files() {
			if c.Path == "" || c.Time.IsZero() || c.Name != "" {
				return q, bad
			}
			q.AfterTime, q.AfterPath = c.Time, c.Path
		} else {
			if c.Name == "" || c.Path != "" {
				return q, bad
			}
			q.AfterName = c.Name
		}
	}
	return q, nil
}

func encodeCursor(c searchCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// search answers GET /api/v1/search: projects by name prefix and maintainer key, or
// published release files by sha256 and publication time (narrowed by the project
// filters), one keyset page at a time. Results are pointers (api.SearchNote).
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	q, err := parseSearch(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res := api.SearchResult{Kind: "projects", Note: api.SearchNote}
	if q.Files() {
		res.Kind = "files"
		files, more, err := s.db.SearchFiles(r.Context(), q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res.Files = files
		if more {
			last := files[len(files)-1]
			res.Next = encodeCursor(searchCursor{Time: last.PublishedAt, Path: last.Path})
		}
	} else {
		projects, more, err := s.db.SearchProjectsBy(r.Context(), q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res.Projects = projects
		if more {
			res.Next = encodeCursor(searchCursor{Name: tufrepo.CanonicalProjectName(projects[len(projects)-1].Name)})
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, res)
}
