package oci

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/store"
)

// Media types of the manifests this registry accepts.
const (
	MediaTypeImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeEmptyJSON      = "application/vnd.oci.empty.v1+json"
)

func isIndex(mt string) bool { return mt == MediaTypeImageIndex || mt == MediaTypeDockerList }

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifestDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

func invalid(format string, args ...any) error {
	return errorf(api.CodeOCIManifestInvalid, nil, format, args...)
}

// computeDigest hashes b with algo.
func computeDigest(algo string, b []byte) string {
	h := api.Digest{Algorithm: algo}.Hash()
	h.Write(b)
	return algo + ":" + hex.EncodeToString(h.Sum(nil))
}

// checkDescriptor validates one descriptor of a manifest.
func checkDescriptor(where string, d *descriptor) error {
	if _, err := api.ParseDigest(d.Digest); err != nil {
		return errorf(api.CodeOCIManifestInvalid, map[string]string{"descriptor": where}, "%s: %v", where, err)
	}
	if d.Size < 0 {
		return invalid("%s: size %d is negative", where, d.Size)
	}
	if d.MediaType == "" {
		return invalid("%s: mediaType is missing", where)
	}
	return nil
}

// parseManifest validates a pushed manifest and returns what to store.
func parseManifest(body []byte, contentType string) (*store.OCIManifestPut, error) {
	// A manifest is stored as pushed and read by every client's own JSON parser: refuse one
	// that parsers could read differently (duplicate or case-variant keys, invalid UTF-8,
	// unsafe integers), since its digest would then name two different artifacts.
	if err := strictjson.Check(body, strictjson.FieldsOf(manifestDoc{})); err != nil {
		return nil, invalid("the manifest is refused: JSON parsers could read it differently (ambiguous_json): %v", err)
	}
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, invalid("the manifest is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, invalid("the manifest has data after its JSON object")
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	ct := ""
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			ct = mt
		}
	}
	mt := doc.MediaType
	switch {
	case mt != "" && ct != "" && mt != ct:
		return nil, invalid("the manifest's mediaType %q differs from the Content-Type %q: send the manifest's own media type", mt, ct)
	case mt == "":
		mt = ct
	}
	if mt == "" || mt == "application/json" || mt == "application/octet-stream" {
		switch {
		case doc.Config != nil:
			mt = MediaTypeImageManifest
		case doc.Manifests != nil:
			mt = MediaTypeImageIndex
		}
	}
	m := &store.OCIManifestPut{}
	m.MediaType = mt
	m.Raw = body
	m.Annotations = doc.Annotations
	switch mt {
	case MediaTypeImageManifest, MediaTypeDockerManifest:
		if doc.Config == nil {
			return nil, invalid("an image manifest needs a config descriptor")
		}
		if doc.Manifests != nil {
			return nil, invalid("an image manifest has no \"manifests\" list (that is an index)")
		}
		if err := checkDescriptor("config", doc.Config); err != nil {
			return nil, err
		}
		m.Blobs = append(m.Blobs, doc.Config.Digest)
		for i := range doc.Layers {
			l := &doc.Layers[i]
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
				return nil, err
			}
			// Non-distributable (foreign) layers are fetched from their URLs, not pushed here.
			if len(l.URLs) > 0 || strings.Contains(l.MediaType, "nondistributable") || strings.Contains(l.MediaType, "foreign") {
				continue
			}
			if !slices.Contains(m.Blobs, l.Digest) {
				m.Blobs = append(m.Blobs, l.Digest)
			}
		}
		m.ArtifactType = doc.ArtifactType
		if m.ArtifactType == "" {
			m.ArtifactType = doc.Config.MediaType
		}
	case MediaTypeImageIndex, MediaTypeDockerList:
		if doc.Config != nil || doc.Layers != nil {
			return nil, invalid("an index has no config or layers (that is an image manifest)")
		}
		for i := range doc.Manifests {
			d := &doc.Manifests[i]
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), d); err != nil {
				return nil, err
			}
			if !slices.Contains(m.Manifests, d.Digest) {
				m.Manifests = append(m.Manifests, d.Digest)
			}
		}
		m.ArtifactType = doc.ArtifactType
	default:
		return nil, invalid("media type %q is not a manifest this registry accepts: use %s or %s (or the Docker v2 equivalents)", truncate(mt, 100), MediaTypeImageManifest, MediaTypeImageIndex)
	}
	if doc.Subject != nil {
		if err := checkDescriptor("subject", doc.Subject); err != nil {
			return nil, err
		}
		m.Subject = doc.Subject.Digest
	}
	return m, nil
}

// isDigestRef tells a digest reference from a tag (tags cannot contain ':').
func isDigestRef(ref string) bool { return strings.Contains(ref, ":") }

func (g *Registry) getManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if _, ok := g.authorize(w, r, repo, accessPull); !ok {
		return
	}
	byDigest := isDigestRef(ref)
	if byDigest {
		if _, err := parseDigest(ref); err != nil {
			g.fail(w, r, err)
			return
		}
	} else if !tagRE.MatchString(ref) {
		g.fail(w, r, errorf(api.CodeOCIManifestUnknown, map[string]string{"reference": truncate(ref, 200)}, "%q is neither a digest nor a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})", truncate(ref, 200)))
		return
	}
	// Reads only read (issue #9: a GET wrote the release tag, which two versions then
	// fought over). A release tag resolves to the manifest TUF implies, whatever the
	// registry's tables hold under that tag; a digest the tables do not have may be a
	// release's (clients that rebuild the manifest from TUF ask by digest first).
	var m *store.OCIManifest
	var err error
	if !byDigest {
		var rel *release
		if rel, err = g.releaseByTag(r.Context(), repo, ref); rel != nil {
			m = rel.manifest(repo)
		}
	}
	if err == nil && m == nil {
		m, err = g.db.OCIGetManifest(r.Context(), repo, ref, byDigest)
	}
	if err == nil && m == nil && byDigest {
		var rel *release
		if rel, err = g.releaseByDigest(r.Context(), repo, ref); rel != nil {
			m = rel.manifest(repo)
		}
	}
	if err == nil && m == nil && byDigest {
		// An attestation committed for a release file, as a referrer of the release.
		var a *attestationManifest
		if a, err = g.attestationManifestByDigest(r.Context(), repo, ref); a != nil {
			m = a.manifest(repo)
		}
	}
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if m == nil {
		g.fail(w, r, errorf(api.CodeOCIManifestUnknown, map[string]string{"reference": ref}, "manifest %s is not in repository %s", ref, repo))
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(m.Raw)))
	h.Set("Docker-Content-Digest", m.Digest)
	h.Set("ETag", `"`+m.Digest+`"`)
	if byDigest {
		h.Set("Cache-Control", "max-age=31536000, immutable")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.Raw)
	}
}

func (g *Registry) putManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if _, ok := g.authorize(w, r, repo, accessPush); !ok {
		return
	}
	var tags []string
	algo := "sha256"
	if isDigestRef(ref) {
		if _, err := parseDigest(ref); err != nil {
			g.fail(w, r, err)
			return
		}
		algo, _, _ = strings.Cut(ref, ":")
	} else {
		tags = append(tags, ref)
	}
	tags = append(tags, r.URL.Query()["tag"]...)
	for _, t := range tags {
		if !tagRE.MatchString(t) {
			g.fail(w, r, errorf(api.CodeOCIManifestInvalid, map[string]string{"tag": truncate(t, 200)}, "tag %q is invalid: it must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", truncate(t, 200)))
			return
		}
	}
	if r.ContentLength > g.cfg.MaxManifestSize {
		g.fail(w, r, g.manifestTooLarge(r.ContentLength))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxManifestSize+1))
	if err != nil {
		g.fail(w, r, fmt.Errorf("reading manifest: %w", err))
		return
	}
	if int64(len(body)) > g.cfg.MaxManifestSize {
		g.fail(w, r, g.manifestTooLarge(0))
		return
	}
	dig := computeDigest(algo, body)
	if isDigestRef(ref) && dig != ref {
		g.fail(w, r, errorf(api.CodeDigestMismatch, map[string]string{"digest": ref, "computed": dig}, "the manifest's bytes hash to %s, not %s: push the exact bytes the digest was computed over", dig, ref))
		return
	}
	m, err := parseManifest(body, r.Header.Get("Content-Type"))
	if err != nil {
		g.fail(w, r, err)
		return
	}
	// Release tags follow TUF: a push may name one only with the release's own manifest,
	// which changes nothing. Other manifests that use a release's blobs (the release
	// manifest under another tag, `crane tag`; an SBOM attached with the empty config,
	// `oras attach`) are stored like any manifest, once those blobs are linked into the
	// repository.
	rels, err := g.releases(r.Context(), repo, "")
	if err != nil {
		g.fail(w, r, err)
		return
	}
	var same *release
	keep := tags[:0:0]
	for i := range rels {
		if rels[i].Digest == dig {
			same = &rels[i]
		}
	}
	for _, t := range tags {
		i := slices.IndexFunc(rels, func(rel release) bool { return rel.Tag == t })
		if i < 0 {
			keep = append(keep, t)
			continue
		}
		if rels[i].Digest != dig {
			g.fail(w, r, releaseTagDenied(repo, &rels[i], "moved"))
			return
		}
	}
	m.Repo, m.Digest, m.Tags = repo, dig, keep
	if same == nil || len(keep) > 0 {
		if len(rels) > 0 {
			if err := g.linkReleaseBlobs(r.Context(), repo, m.Blobs); err != nil {
				g.fail(w, r, err)
				return
			}
		}
		m.Release = same != nil
		if err := g.db.OCIPutManifest(r.Context(), *m); err != nil {
			g.fail(w, r, err)
			return
		}
	}
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/manifests/"+dig)
	h.Set("Docker-Content-Digest", dig)
	if m.Subject != "" {
		h.Set("OCI-Subject", m.Subject)
	}
	if q := r.URL.Query()["tag"]; len(q) > 0 {
		h.Set("OCI-Tag", strings.Join(q, ", "))
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (g *Registry) manifestTooLarge(got int64) error {
	if got > 0 {
		return errorf(api.CodeOCIManifestTooLarge, map[string]int64{"limit": g.cfg.MaxManifestSize, "size": got}, "the manifest is %d bytes; manifests may be at most %d bytes", got, g.cfg.MaxManifestSize)
	}
	return errorf(api.CodeOCIManifestTooLarge, map[string]int64{"limit": g.cfg.MaxManifestSize}, "the manifest is larger than the limit of %d bytes", g.cfg.MaxManifestSize)
}

// deleteManifest deletes a manifest by digest (and its tags), or only the tag when the
// reference is a tag. Release tags and manifests are refused.
func (g *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if _, ok := g.authorize(w, r, repo, accessDelete); !ok {
		return
	}
	var found bool
	var err error
	if isDigestRef(ref) {
		if _, err := parseDigest(ref); err != nil {
			g.fail(w, r, err)
			return
		}
		var rel *release
		if rel, err = g.releaseByDigest(r.Context(), repo, ref); err == nil && rel != nil {
			g.fail(w, r, errorf(api.CodeOCIReleaseImmutable, map[string]string{"digest": ref, "version": rel.Version}, "manifest %s@%s is release %s %s: releases are immutable (yank it with `cairn yank` instead)", repo, ref, repo, rel.Version))
			return
		}
		var a *attestationManifest
		if err == nil {
			a, err = g.attestationManifestByDigest(r.Context(), repo, ref)
		}
		if err == nil && a != nil {
			g.fail(w, r, errorf(api.CodeForbidden, map[string]string{"digest": ref, "bundle": "sha256:" + a.Ref.BundleSHA256},
				"manifest %s@%s is attestation sha256:%s of %s, which the TUF attestation index commits: the OCI API cannot remove it", repo, ref, a.Ref.BundleSHA256, a.Ref.FileName))
			return
		}
		if err == nil {
			found, err = g.db.OCIDeleteManifest(r.Context(), repo, ref)
		}
	} else {
		if !tagRE.MatchString(ref) {
			g.fail(w, r, errorf(api.CodeOCIManifestUnknown, nil, "%q is neither a digest nor a valid tag", truncate(ref, 200)))
			return
		}
		var rel *release
		if rel, err = g.releaseByTag(r.Context(), repo, ref); err == nil && rel != nil {
			g.fail(w, r, releaseTagDenied(repo, rel, "deleted"))
			return
		}
		if err == nil {
			found, err = g.db.OCIDeleteTag(r.Context(), repo, ref)
		}
	}
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if !found {
		g.fail(w, r, errorf(api.CodeOCIManifestUnknown, map[string]string{"reference": ref}, "manifest %s is not in repository %s", ref, repo))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

const maxTagPage = 1000

// listTags is GET tags/list with ?n= and ?last= pagination and a Link header to the next page.
func (g *Registry) listTags(w http.ResponseWriter, r *http.Request, repo, _ string) {
	if _, ok := g.authorize(w, r, repo, accessPull); !ok {
		return
	}
	q := r.URL.Query()
	n := maxTagPage
	if s, ok := q["n"]; ok {
		v, err := strconv.Atoi(s[0])
		if err != nil || v < 0 {
			g.fail(w, r, errorf(api.CodeOCIUnsupported, map[string]string{"n": truncate(s[0], 40)}, "n=%q must be a number from 0 to %d", truncate(s[0], 40), maxTagPage))
			return
		}
		n = min(v, maxTagPage)
	}
	last := q.Get("last")
	rels, err := g.releases(r.Context(), repo, "")
	if err != nil {
		g.fail(w, r, err)
		return
	}
	exists := len(rels) > 0
	if !exists {
		if exists, err = g.db.OCIRepoExists(r.Context(), repo); err != nil {
			g.fail(w, r, err)
			return
		}
	}
	if !exists {
		g.fail(w, r, errorf(api.CodeOCINameUnknown, map[string]string{"name": repo}, "repository %s does not exist: nothing was ever pushed to it", repo))
		return
	}
	tags := []string{}
	more := false
	if n > 0 {
		// The stored tags' page merged with the release tags (derived, never stored), in
		// byte order like the store's: the first n of the union are within the store's
		// first n and the release tags.
		var stored []string
		if stored, more, err = g.db.OCIListTags(r.Context(), repo, last, n); err != nil {
			g.fail(w, r, err)
			return
		}
		tags = append(tags, stored...)
		for _, rel := range rels {
			if rel.Tag > last && !slices.Contains(stored, rel.Tag) {
				tags = append(tags, rel.Tag)
			}
		}
		slices.Sort(tags)
		if len(tags) > n {
			tags, more = tags[:n], true
		}
	}
	if more {
		v := url.Values{"n": {strconv.Itoa(n)}, "last": {tags[len(tags)-1]}}
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, repo, v.Encode()))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
}

// referrers is GET referrers/<digest>: an index of the manifests whose subject is digest,
// optionally filtered by ?artifactType= (OCI-Filters-Applied says so). An unknown
// subject has an empty list, not a 404.
func (g *Registry) referrers(w http.ResponseWriter, r *http.Request, repo, d string) {
	if _, ok := g.authorize(w, r, repo, accessPull); !ok {
		return
	}
	dig, err := parseDigest(d)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	at := r.URL.Query().Get("artifactType")
	refs, err := g.db.OCIReferrers(r.Context(), repo, dig, at)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	// A release's committed attestations (derived, never stored) follow the stored
	// referrers; a stored manifest with the same digest is listed once.
	derived, err := g.releaseReferrers(r.Context(), repo, dig, at)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	for _, a := range derived {
		if !slices.ContainsFunc(refs, func(x store.OCIReferrer) bool { return x.Digest == a.Digest }) {
			refs = append(refs, a.referrer())
		}
	}
	list := make([]descriptor, 0, len(refs))
	for _, x := range refs {
		list = append(list, descriptor{MediaType: x.MediaType, Digest: x.Digest, Size: x.Size, ArtifactType: x.ArtifactType, Annotations: x.Annotations})
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", MediaTypeImageIndex)
	_ = json.NewEncoder(w).Encode(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeImageIndex, "manifests": list})
}
