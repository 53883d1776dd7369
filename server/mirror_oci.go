package server

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/mirror"
)

// The OCI Distribution API's read side over a mirror directory (mirror/oci.go lays it
// out): manifests by tag and digest, blobs, tags list and the referrers API, byte for byte
// as the bundle carried them. Writes never reach here (ServeHTTP refuses them).
var (
	mirrorOCIManifest = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	mirrorOCIBlob     = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)
	mirrorOCITags     = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
	mirrorOCIRefs     = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
)

func (m *Mirror) serveOCI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	if p == "/v2" || p == "/v2/" {
		// No credentials here: the mirror serves everything it holds to everyone.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("{}"))
		}
		return
	}
	match := func(re *regexp.Regexp) []string {
		s := re.FindStringSubmatch(p)
		if s == nil || mirror.CheckOCIRepoName(s[1]) != nil {
			return nil
		}
		return s
	}
	switch {
	case match(mirrorOCITags) != nil:
		repo := match(mirrorOCITags)[1]
		raw, err := os.ReadFile(m.ociPath(repo, "tags/list"))
		if err != nil {
			m.ociMissing(w, err, api.CodeOCINameUnknown, "this mirror holds no OCI repository "+repo)
			return
		}
		var tl struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(raw, &tl); err != nil {
			m.log.Error("reading a mirror's tag list", "repo", repo, "err", err)
			writeOCIError(w, api.Errorf(api.CodeInternal, "internal error"))
			return
		}
		// Pagination as the spec has it: n and last.
		q := r.URL.Query()
		if last := q.Get("last"); last != "" {
			i, _ := slices.BinarySearch(tl.Tags, last)
			if i < len(tl.Tags) && tl.Tags[i] == last {
				i++
			}
			tl.Tags = tl.Tags[i:]
		}
		if ns := q.Get("n"); ns != "" {
			n, err := strconv.Atoi(ns)
			if err != nil || n < 0 {
				writeOCIError(w, api.Errorf(api.CodeOCIUnsupported, "n must be a non-negative integer"))
				return
			}
			if n < len(tl.Tags) {
				tl.Tags = tl.Tags[:n]
				w.Header().Set("Link", "</v2/"+repo+"/tags/list?n="+strconv.Itoa(n)+"&last="+tl.Tags[len(tl.Tags)-1]+`>; rel="next"`)
			}
		}
		if tl.Tags == nil {
			tl.Tags = []string{}
		}
		w.Header().Set("Cache-Control", cacheShort)
		writeJSON(w, http.StatusOK, tl)
	case match(mirrorOCIManifest) != nil:
		s := match(mirrorOCIManifest)
		repo, ref := s[1], s[2]
		rec, err := m.ociRecord(repo)
		if err != nil {
			m.ociMissing(w, err, api.CodeOCINameUnknown, "this mirror holds no OCI repository "+repo)
			return
		}
		d, cache := ref, cacheImmutable
		if !mirror.IsOCIDigest(ref) {
			if mirror.CheckOCITag(ref) != nil {
				writeOCIError(w, api.Errorf(api.CodeOCIManifestUnknown, "no manifest %s:%s", repo, truncated(ref)))
				return
			}
			d, cache = rec.Tags[ref], cacheShort // a later import may move a tag
		}
		e, ok := rec.Manifest(d)
		if !ok {
			writeOCIError(w, api.Errorf(api.CodeOCIManifestUnknown, "this mirror holds no manifest %s %s", repo, truncated(ref)))
			return
		}
		w.Header().Set("Docker-Content-Digest", d)
		m.serveOCIFile(w, r, m.ociPath(repo, "manifests/"+d), e.MediaType, cache, api.CodeOCIManifestUnknown)
	case match(mirrorOCIBlob) != nil:
		s := match(mirrorOCIBlob)
		if !mirror.IsOCIDigest(s[2]) {
			writeOCIError(w, api.Errorf(api.CodeOCIBlobUnknown, "this mirror holds sha256 blobs only"))
			return
		}
		w.Header().Set("Docker-Content-Digest", s[2])
		m.serveOCIFile(w, r, m.ociPath(s[1], "blobs/"+s[2]), "application/octet-stream", cacheImmutable, api.CodeOCIBlobUnknown)
	case match(mirrorOCIRefs) != nil:
		s := match(mirrorOCIRefs)
		repo, d := s[1], s[2]
		if !mirror.IsOCIDigest(d) {
			writeOCIError(w, api.Errorf(api.CodeOCIDigestInvalid, "the referrers API takes a sha256 digest"))
			return
		}
		var idx struct {
			Manifests []mirror.OCIDescriptor `json:"manifests"`
		}
		raw, err := os.ReadFile(m.ociPath(repo, "referrers/"+d))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Spec: an unknown subject has an empty list of referrers.
		case err != nil:
			m.log.Error("reading a mirror's referrers", "repo", repo, "err", err)
			writeOCIError(w, api.Errorf(api.CodeInternal, "internal error"))
			return
		default:
			if err := json.Unmarshal(raw, &idx); err != nil {
				m.log.Error("reading a mirror's referrers", "repo", repo, "err", err)
				writeOCIError(w, api.Errorf(api.CodeInternal, "internal error"))
				return
			}
		}
		if at := r.URL.Query().Get("artifactType"); at != "" {
			idx.Manifests = slices.DeleteFunc(idx.Manifests, func(d mirror.OCIDescriptor) bool { return d.ArtifactType != at })
			w.Header().Set("OCI-Filters-Applied", "artifactType")
		}
		out, err := mirror.ReferrersIndex(idx.Manifests)
		if err != nil {
			writeOCIError(w, api.Errorf(api.CodeInternal, "internal error"))
			return
		}
		w.Header().Set("Content-Type", mirror.OCIImageIndex)
		w.Header().Set("Cache-Control", cacheShort)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(out)
		}
	default:
		writeOCIError(w, api.Errorf(api.CodeOCINameUnknown, "no OCI endpoint at %s on this read-only mirror", truncated(p)))
	}
}

func truncated(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// ociPath is the disk path of a file of repository repo (validated by the caller).
func (m *Mirror) ociPath(repo, rel string) string {
	return filepath.Join(m.dir, "v2", filepath.FromSlash(repo), filepath.FromSlash(rel))
}

func (m *Mirror) ociRecord(repo string) (*mirror.OCIRepository, error) {
	raw, err := os.ReadFile(m.ociPath(repo, mirror.OCIRepositoryFile))
	if err != nil {
		return nil, err
	}
	return mirror.ParseOCIRepository(raw)
}

// ociMissing answers code (a 404) for a missing file, 500 (logged) otherwise.
func (m *Mirror) ociMissing(w http.ResponseWriter, err error, code api.Code, msg string) {
	if errors.Is(err, fs.ErrNotExist) {
		writeOCIError(w, api.Errorf(code, "%s", msg))
		return
	}
	m.log.Error("reading a mirror's OCI files", "err", err)
	writeOCIError(w, api.Errorf(api.CodeInternal, "internal error"))
}

func (m *Mirror) serveOCIFile(w http.ResponseWriter, r *http.Request, path, contentType, cache string, code api.Code) {
	f, err := os.Open(path)
	if err != nil {
		w.Header().Del("Docker-Content-Digest")
		m.ociMissing(w, err, code, "this mirror holds no "+truncated(r.URL.Path))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		w.Header().Del("Docker-Content-Digest")
		writeOCIError(w, api.Errorf(code, "this mirror holds no %s", truncated(r.URL.Path)))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", cache)
	http.ServeContent(w, r, "", st.ModTime(), f)
}
