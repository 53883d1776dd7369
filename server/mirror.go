package server

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/mirror"
)

// Mirror serves a mirror directory (mirror.Dir) read-only, for 'cairnd serve --mirror' at
// an air-gapped site: TUF metadata, release files and the bundle's export time, under the
// same paths and with the same headers as a full server, byte for byte as the bundle
// carried them, the Merkle snapshot proofs it carried (/api/v1/merkle/) and the
// attestations it carried (/api/v1/attestations/, mirror_attest.go). Every other
// method is refused with read_only_mirror (OCI clients: DENIED); the rest of the REST API
// is not served. Under /v2/ it serves the OCI artifacts bundles carried (mirror_oci.go).
// Nothing it serves needs trust in it: clients verify from their pinned root, as against
// cairnd, and OCI clients check digests and their artifacts' own signatures.
type Mirror struct {
	dir string
	log *slog.Logger
}

// NewMirror returns the mirror handler of dir.
func NewMirror(dir string, log *slog.Logger) *Mirror { return &Mirror{dir: dir, log: log} }

func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		if strings.HasPrefix(p, "/metadata/") || strings.HasPrefix(p, "/targets/") {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			preflight(w, r)
			return
		}
		fallthrough
	default:
		err := api.Errorf(api.CodeReadOnlyMirror, "this server is a read-only mirror (cairnd serve --mirror): %s %.200q is refused. Make changes on the origin registry, then carry them here with 'cairn mirror export' and 'cairnd mirror import'", r.Method, p)
		w.Header().Set("Allow", "GET, HEAD")
		if strings.HasPrefix(p, "/v2/") || p == "/v2" {
			writeOCIError(w, err) // read_only_mirror: 405 DENIED
			return
		}
		m.writeError(w, err)
		return
	}
	switch {
	case p == "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case p == "/readyz":
		if _, err := os.Stat(filepath.Join(m.dir, "metadata", "timestamp.json")); err != nil {
			m.writeError(w, api.Errorf(api.CodeUnavailable, "the mirror holds no bundle yet: import one with 'cairnd mirror import bundle.tar'"))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	case p == "/"+mirror.InfoPath:
		m.serveFile(w, r, mirror.InfoPath, "application/json", cacheShort)
	case strings.HasPrefix(p, "/metadata/"):
		name := strings.TrimPrefix(p, "/metadata/")
		cache := cacheImmutable
		if name == "timestamp.json" || name == "root.json" {
			cache = cacheShort
		} else if _, _, err := mirror.MetadataName(name); err != nil {
			m.writeError(w, errNotFound(p))
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		m.serveFile(w, r, "metadata/"+name, "application/json", cache)
	case strings.HasPrefix(p, "/targets/"):
		rel := strings.TrimPrefix(p, "/")
		if _, _, err := mirror.OwnTargetFile(rel); err == nil {
			// The trusted root and attestation indexes the bundles carried.
			w.Header().Set("Access-Control-Allow-Origin", "*")
			m.serveFile(w, r, rel, "application/json", cacheImmutable)
			return
		}
		if _, _, err := mirror.TargetFile(rel); err != nil {
			m.writeError(w, errNotFound(p))
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		m.serveFile(w, r, strings.TrimPrefix(p, "/"), "application/octet-stream", cacheImmutable)
	case strings.HasPrefix(p, "/v2/") || p == "/v2":
		m.serveOCI(w, r)
	case strings.HasPrefix(p, "/api/v1/merkle/"):
		// The proofs the bundle carried, for its timestamp (cairn get's Merkle refresh).
		rel := "merkle/" + strings.TrimPrefix(p, "/api/v1/merkle/") + ".json"
		if _, _, err := mirror.MerkleProofName(rel); err == nil {
			if _, err := os.Stat(filepath.Join(m.dir, filepath.FromSlash(rel))); err == nil {
				m.serveFile(w, r, rel, "application/json", cacheImmutable)
				return
			}
		}
		m.writeError(w, api.Errorf(api.CodeNotFound, "this read-only mirror holds no Merkle snapshot proof at %.200q (its bundle carried none for that timestamp and role): run cairn with --classic-snapshot, or 'cairn get --as-of-bundle' (which uses snapshot.json)", p))
	case strings.HasPrefix(p, "/api/v1/attestations/"):
		m.serveAttestations(w, r, strings.TrimPrefix(p, "/api/v1/attestations/"))
	case strings.HasPrefix(p, "/api/"):
		m.writeError(w, api.Errorf(api.CodeNotFound, "this read-only mirror serves TUF metadata (/metadata/), release files (/targets/), /mirror/bundle.json, Merkle proofs and the attestations its bundles carried (/api/v1/attestations/); the REST API %.200q is not mirrored", p))
	default:
		m.writeError(w, errNotFound(p))
	}
}

// serveFile serves the mirror file at rel (validated by the caller), with Range and
// conditional requests from http.ServeContent.
func (m *Mirror) serveFile(w http.ResponseWriter, r *http.Request, rel, contentType, cache string) {
	f, err := os.Open(filepath.Join(m.dir, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		m.writeError(w, errNotFound(r.URL.Path))
		return
	}
	if err != nil {
		m.log.Error("reading a mirror file", "path", rel, "err", err)
		m.writeError(w, api.Errorf(api.CodeInternal, "internal error"))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		m.writeError(w, errNotFound(r.URL.Path))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", cache)
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func (m *Mirror) writeError(w http.ResponseWriter, err error) {
	p := api.ProblemFor(err)
	w.Header().Set("Content-Type", api.MediaProblem)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeOCIError answers an OCI client in the distribution-spec error envelope, as the
// registry does (api.OCIAnswerFor: the status and the spec code come from the registry).
func writeOCIError(w http.ResponseWriter, err error) {
	status, doc := api.OCIAnswerFor(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(doc)
}
