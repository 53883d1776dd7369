// Package oci is Cairn's OCI Distribution API (v1.1) under /v2/: pull, push (monolithic,
// chunked, streamed), cross-repository mount, tags, deletes and the referrers API, with
// sha256 and sha512 digests. Metadata is in PostgreSQL (store/oci.go); blob bytes are in
// the same content-addressed blob store as release files, so nothing is stored twice.
// Its contract is the distribution spec, checked by the conformance suite
// (oci/conformance_test.go), not api/openapi.yaml.
package oci

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/faults"
	"github.com/cairn-dev/cairn/store/blobstore"
)

// Config holds the registry's switches and limits.
type Config struct {
	// AnonymousPull lets requests without credentials read every repository.
	AnonymousPull bool
	// MaxBlobSize bounds one blob (the server's --max-blob-size).
	MaxBlobSize int64
	// MaxManifestSize bounds one manifest; the spec suggests accepting at least 4 MiB.
	MaxManifestSize int64
	// UploadTTL is how long an upload session lives after its last chunk.
	UploadTTL time.Duration
	// TokenTTL is the lifetime of registry tokens handed out by /v2/token.
	TokenTTL time.Duration
	// Service names the registry in Bearer challenges and tokens.
	Service string
	// ExternalURL is the registry's public base URL (https://registry.example): Bearer
	// challenges send clients' credentials to ExternalURL/v2/token. It comes from
	// configuration, never from a request's Host. Empty: challenges are Basic.
	ExternalURL string
	// Faults logs dependency failures (database, disk) once per cause; the server shares
	// its own so that one outage is one log line. Nil: the registry makes its own.
	Faults *faults.Reporter
}

// DefaultConfig returns working defaults: anonymous pull on.
func DefaultConfig() Config {
	return Config{
		AnonymousPull:   true,
		MaxBlobSize:     1 << 30,
		MaxManifestSize: 4 << 20,
		UploadTTL:       24 * time.Hour,
		TokenTTL:        5 * time.Minute,
		Service:         "cairn",
	}
}

// Registry is the /v2/ handler.
type Registry struct {
	cfg   Config
	db    Store
	blobs *blobstore.Store
	log   *slog.Logger
	now   func() time.Time

	keyMu sync.Mutex
	key   []byte // registry token HMAC key, loaded from the database once
}

// New returns the registry. It does not touch the database until a request arrives.
func New(cfg Config, db Store, blobs *blobstore.Store, log *slog.Logger, now func() time.Time) *Registry {
	def := DefaultConfig()
	if cfg.MaxBlobSize <= 0 {
		cfg.MaxBlobSize = def.MaxBlobSize
	}
	if cfg.MaxManifestSize <= 0 {
		cfg.MaxManifestSize = def.MaxManifestSize
	}
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = def.UploadTTL
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = def.TokenTTL
	}
	if cfg.Service == "" {
		cfg.Service = def.Service
	}
	if cfg.Faults == nil {
		var ping func(context.Context) error
		if db != nil {
			ping = db.Ping
		}
		cfg.Faults = faults.NewReporter(log, now, ping)
	}
	return &Registry{cfg: cfg, db: db, blobs: blobs, log: log, now: now}
}

// The repository name grammar of the distribution spec.
var nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// Routes of the spec's endpoint table. The repository name may hold slashes, so the
// path is matched here rather than by chi.
var (
	reUploads  = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/?$`)
	reUpload   = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([^/]+)$`)
	reBlob     = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)
	reManifest = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	reTags     = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
	reRefs     = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
)

const maxNameLen = 255

func (g *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	if p == "/v2" || p == "/v2/" {
		g.ping(w, r)
		return
	}
	if p == "/v2/token" {
		g.token(w, r)
		return
	}
	type route struct {
		re      *regexp.Regexp
		methods map[string]func(http.ResponseWriter, *http.Request, string, string)
	}
	routes := []route{
		{reUploads, map[string]func(http.ResponseWriter, *http.Request, string, string){"POST": g.startUpload}},
		{reUpload, map[string]func(http.ResponseWriter, *http.Request, string, string){"GET": g.uploadStatus, "PATCH": g.patchUpload, "PUT": g.putUpload, "DELETE": g.cancelUpload}},
		{reBlob, map[string]func(http.ResponseWriter, *http.Request, string, string){"GET": g.getBlob, "HEAD": g.getBlob, "DELETE": g.deleteBlob}},
		{reManifest, map[string]func(http.ResponseWriter, *http.Request, string, string){"GET": g.getManifest, "HEAD": g.getManifest, "PUT": g.putManifest, "DELETE": g.deleteManifest}},
		{reTags, map[string]func(http.ResponseWriter, *http.Request, string, string){"GET": g.listTags}},
		{reRefs, map[string]func(http.ResponseWriter, *http.Request, string, string){"GET": g.referrers}},
	}
	for _, rt := range routes {
		m := rt.re.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		name, arg := m[1], ""
		if len(m) > 2 {
			arg = m[2]
		}
		h, ok := rt.methods[r.Method]
		if !ok {
			allow := make([]string, 0, len(rt.methods))
			for k := range rt.methods {
				allow = append(allow, k)
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			g.fail(w, r, errorf(api.CodeMethodNotAllowed, nil, "%s is not supported on %s", r.Method, p))
			return
		}
		if len(name) > maxNameLen || !nameRE.MatchString(name) {
			g.fail(w, r, errorf(api.CodeOCINameInvalid, map[string]string{"name": truncate(name, 300)},
				"repository name %q is invalid: lowercase components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/', at most %d characters", truncate(name, 300), maxNameLen))
			return
		}
		h(w, r, name, arg)
		return
	}
	g.fail(w, r, errorf(api.CodeOCINameUnknown, nil, "no OCI endpoint at %s", truncate(p, 300)))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ping is GET /v2/. It challenges every request without valid credentials, as Docker
// Hub does, even while anonymous pull is on: `docker login` and `oras login` ping
// without credentials and would otherwise report success for any token. Anonymous
// clients follow the challenge to /v2/token, which hands them an anonymous token.
func (g *Registry) ping(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		g.fail(w, r, errorf(api.CodeMethodNotAllowed, nil, "%s is not supported on /v2/", r.Method))
		return
	}
	id, err := g.credentials(r)
	if err == nil && !id.presented {
		err = errorf(api.CodeUnauthorized, nil, "send credentials (a Cairn token as the password), or get an anonymous token from /v2/token")
	}
	if err != nil {
		g.challenge(w, r, "", accessPull)
		g.fail(w, r, err)
		return
	}
	if id.token == nil && !g.cfg.AnonymousPull {
		g.challenge(w, r, "", accessPull)
		g.fail(w, r, errorf(api.CodeUnauthorized, nil, "anonymous pull is off on this registry: log in with a Cairn token"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
}
