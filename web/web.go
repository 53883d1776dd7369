// Package web is Cairn's web UI: server-rendered pages for people (home and search,
// projects, releases, a page per metadata file and version, root diffs, the audit and
// transparency logs), the script that verifies them in the browser with tuf-js from a root
// the user pinned, and a browser for any TUF repository (/browse) whose fetches go from
// the browser, never through the server. Pages need no login and read without JavaScript.
//
// The server mounts it with one call (Register); web reads the store and the published
// metadata through Source and never writes.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/go-chi/chi/v5"
)

// Head is the published state a replica serves.
type Head struct {
	Timestamp, Snapshot, Root int64
}

// Source is what the pages read besides the database: the replica's published head, the
// exact bytes of published metadata (from its in-memory cache), and role expiries.
type Source interface {
	// Head returns the published head, or false before the first one is loaded.
	Head() (Head, bool)
	// Metadata returns the exact bytes of a published version of role; an *api.Error with
	// CodeNotFound if there is none.
	Metadata(ctx context.Context, role string, version int64) ([]byte, error)
	// Status lists every top-level and delegating role with its expiry and warnings.
	Status() []api.RoleExpiry
}

// Config configures the UI.
type Config struct {
	// ExternalURL is the server's public base URL, for the commands and OCI references
	// pages show; empty means the request's own scheme and host.
	ExternalURL string
	// TlogURL and TlogKey describe the transparency log, if one is configured; with a key
	// the log page checks each entry's checkpoint signature too.
	TlogURL string
	TlogKey *tlog.LogKey
}

// UI serves the pages.
type UI struct {
	cfg   Config
	db    *store.DB
	src   Source
	log   *slog.Logger
	now   func() time.Time
	tmpl  *template.Template
	pages *pageCache
	roles *roleCache
	asset assets
}

// New builds the UI.
func New(cfg Config, db *store.DB, src Source, log *slog.Logger, now func() time.Time) *UI {
	u := &UI{cfg: cfg, db: db, src: src, log: log, now: now, pages: newPageCache(2048, 64<<20), roles: newRoleCache(256 << 20)}
	u.asset = loadAssets()
	u.tmpl = parseTemplates(u.asset)
	return u
}

// Register mounts the pages and assets on r.
func (u *UI) Register(r chi.Router) {
	r.Get("/", u.home)
	r.Get("/search", u.search)
	r.Get("/projects/{name}", u.project)
	r.Get("/projects/{name}/{version}", u.release)
	r.Get("/roles/{role}", u.roleLatest)
	r.Get("/roles/{role}/{version}", u.role)
	r.Get("/roles/root/diff", u.rootDiff)
	r.Get("/log", u.auditLog)
	r.Get("/log/transparency", u.tlogPage)
	r.Get("/trust", u.trust)
	r.Get("/browse", u.browse)
	r.Get("/static/{hash}/{file}", u.static)
}

// Content-Security-Policy of every page: scripts and styles only from files this server
// serves (no inline script or style), metadata fetched from this origin only.
const (
	cspPage   = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	cspBrowse = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src *; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

func securityHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// page is what every template gets.
type page struct {
	Title   string
	Kind    string // body data-page
	Base    string // external base URL, for commands
	Asset   assets
	Notice  string
	Data    any
	NoIndex bool
}

// render executes a page template into a buffer and serves it with an ETag.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) []byte {
	p.Asset = u.asset
	if p.Base == "" {
		p.Base = u.base(r)
	}
	var buf bytes.Buffer
	if err := u.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		u.log.Error("rendering page", "page", name, "err", err)
		u.fail(w, r, fmt.Errorf("rendering %s: %w", name, err))
		return nil
	}
	b := buf.Bytes()
	serveHTML(w, r, status, b, etagFor(b), csp(p.Kind))
	return b
}

func csp(kind string) string {
	if kind == "browse" {
		return cspBrowse
	}
	return cspPage
}

func etagFor(b []byte) string {
	s := sha256.Sum256(b)
	return `"w` + hex.EncodeToString(s[:12]) + `"`
}

// serveHTML writes a page; a matching If-None-Match gets 304. Pages may change at any
// publish, so caches must revalidate (cheap: most pages answer from the page cache).
func serveHTML(w http.ResponseWriter, r *http.Request, status int, body []byte, etag, policy string) {
	h := w.Header()
	securityHeaders(h, policy)
	h.Set("Content-Type", "text/html; charset=utf-8")
	if status == http.StatusOK {
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else {
		h.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// cached serves a page from the page cache when its fingerprint (everything the page
// shows that can change) is unchanged, and renders and stores it otherwise.
func (u *UI) cached(w http.ResponseWriter, r *http.Request, fingerprint string, build func() (string, page, error)) {
	key := r.URL.Path + "?" + r.URL.RawQuery
	if e, ok := u.pages.get(key, fingerprint); ok {
		serveHTML(w, r, http.StatusOK, e.body, e.etag, e.csp)
		return
	}
	name, p, err := build()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if b := u.render(w, r, http.StatusOK, name, p); b != nil {
		u.pages.put(key, fingerprint, b, etagFor(b), csp(p.Kind))
	}
}

// fail renders an error page: a 404 or 400 says what was not found or wrong; anything
// else is logged and shown without internal details.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := api.ProblemFor(err)
	status := p.Status
	msg := p.Detail
	var ae *api.Error
	if !errors.As(err, &ae) || status >= 500 {
		u.log.Error("web page failed", "path", r.URL.Path, "err", err)
		status, msg = http.StatusInternalServerError, "The server could not build this page; the error is in its log."
	}
	var buf bytes.Buffer
	pg := page{Title: http.StatusText(status), Kind: "error", Base: u.base(r), Asset: u.asset, Data: msg, NoIndex: true}
	if err := u.tmpl.ExecuteTemplate(&buf, "error", pg); err != nil {
		http.Error(w, msg, status)
		return
	}
	serveHTML(w, r, status, buf.Bytes(), "", cspPage)
}

// base is the server's public base URL.
func (u *UI) base(r *http.Request) string {
	if u.cfg.ExternalURL != "" {
		return strings.TrimSuffix(u.cfg.ExternalURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// pageCache keeps rendered pages with the fingerprint they were rendered at. Bounded by
// entries and bytes; evicts arbitrary entries (the hot pages come back at once).
type pageCache struct {
	mu       sync.Mutex
	m        map[string]cachedPage
	bytes    int
	maxN     int
	maxBytes int
}

type cachedPage struct {
	fingerprint string
	body        []byte
	etag, csp   string
}

func newPageCache(maxN, maxBytes int) *pageCache {
	return &pageCache{m: map[string]cachedPage{}, maxN: maxN, maxBytes: maxBytes}
}

func (c *pageCache) get(key, fp string) (cachedPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e, ok && e.fingerprint == fp
}

func (c *pageCache) put(key, fp string, body []byte, etag, csp string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[key]; ok {
		c.bytes -= len(old.body)
		delete(c.m, key)
	}
	for k, old := range c.m {
		if len(c.m) < c.maxN && c.bytes+len(body) <= c.maxBytes {
			break
		}
		c.bytes -= len(old.body)
		delete(c.m, k)
	}
	if len(body) > c.maxBytes {
		return
	}
	c.m[key] = cachedPage{fingerprint: fp, body: body, etag: etag, csp: csp}
	c.bytes += len(body)
}
