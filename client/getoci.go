package client

import (
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/internal/strictjson"
)

// sget's OCI mode (issue #12): `cairn get oci://REGISTRY/REPO@sha256:HEX` fetches an OCI
// artifact by digest only — the registry is trusted for nothing: the manifest must hash
// to the digest given, each layer to its descriptor's digest — and verifies the Sigstore
// bundles attached to it as referrers (cosign's bundle layout) offline against the trusted
// root the configured Cairn repository publishes through TUF. Any registry that speaks the
// Distribution API with the referrers API serves; anonymous pulls, or Basic auth with a
// token.

// OCIRef is oci://HOST/REPO@sha256:HEX or oci://HOST/REPO:TAG.
type OCIRef struct {
	Base   string // scheme://host/v2/repo
	Repo   string
	Digest string // sha256:hex; with a tag, set once the tag is resolved (FetchOCIArtifact)
	Tag    string
}

func (r OCIRef) String() string {
	u, _ := url.Parse(r.Base)
	s := u.Host + "/" + r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// ociTagRE is the distribution spec's tag grammar.
var ociTagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ParseOCIRef reads oci://HOST[:PORT]/REPO@sha256:HEX or oci://HOST[:PORT]/REPO:TAG. A tag
// only names a digest: FetchOCIArtifact resolves it once and everything after is checked
// against that digest. The registry is reached over https, or plain http on loopback only.
func ParseOCIRef(s string) (OCIRef, error) {
	rest, ok := strings.CutPrefix(s, "oci://")
	if !ok {
		return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q is not an oci:// reference", s)
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host == "" || path == "" {
		return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q names no repository: use oci://REGISTRY/REPO@sha256:DIGEST", s)
	}
	repo, dig, byDigest := strings.Cut(path, "@")
	tag := ""
	if byDigest {
		if _, err := api.ParseDigest(dig); err != nil || !strings.HasPrefix(dig, "sha256:") {
			return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q: the digest must be sha256:<64 hex digits>", s)
		}
	} else {
		i := strings.LastIndex(repo, ":")
		if i < 0 {
			return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q names neither a digest nor a tag: use oci://REGISTRY/REPO@sha256:DIGEST (or REPO:TAG, resolved once to a digest)", s)
		}
		repo, tag = repo[:i], repo[i+1:]
		if !ociTagRE.MatchString(tag) {
			return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q: %.140q is not a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})", s, tag)
		}
	}
	if repo == "" || strings.ContainsAny(repo, ":?#") {
		return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q: %q is not a repository name", s, repo)
	}
	scheme := "https"
	if h, err := url.Parse("https://" + host); err == nil {
		if ip := net.ParseIP(h.Hostname()); h.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			scheme = "http" // a registry on loopback, as CheckFetchURL allows
		}
	}
	u, err := CheckFetchURL(scheme + "://" + host + "/v2/" + repo)
	if err != nil {
		return OCIRef{}, err
	}
	return OCIRef{Base: u.String(), Repo: repo, Digest: dig, Tag: tag}, nil
}

// OCILayer is one file of an artifact: a layer titled by org.opencontainers.image.title.
type OCILayer struct {
	Name   string
	Digest string
	Size   int64
}

// OCIArtifact is an artifact fetched by digest with the bundles attached to it.
type OCIArtifact struct {
	Ref       OCIRef // with the digest, also when it was named by tag
	Manifest  []byte
	MediaType string    // the manifest's
	Config    *OCILayer // its config blob, if the manifest names one
	Layers    []OCILayer
	// Bundles are the layers of the referrers of artifactType api.ArtifactTypeSigstoreBundle,
	// each checked against its digest, with the file digest a Cairn referrer names
	// (dev.cairn.attestation.file.digest), if any.
	Bundles []OCIBundle
}

// OCIBundle is one bundle attached to an artifact.
type OCIBundle struct {
	Raw        []byte
	FileDigest string // sha256:hex of the file it is about, when the referrer says
}

type ociDoc struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	} `json:"config"`
	Layers []struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations"`
	} `json:"layers"`
	Annotations map[string]string `json:"annotations"`
}

type ociGetter struct {
	hc    *http.Client
	token string
	// bearer is the registry token got from the registry's token service (the
	// distribution spec's token authentication), shared by the getter's copies.
	bearer *string
}

// get reads u (at most max bytes) and checks it against digest d when d is given.
func (g ociGetter) get(ctx context.Context, u, accept, d string, max int64) ([]byte, error) {
	res, err := g.do(ctx, u, accept)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusUnauthorized && (g.bearer == nil || *g.bearer == "") {
		// Most registries (ghcr.io, Docker Hub, zot with auth) want a bearer token even
		// for anonymous pulls: get one from the token service the challenge names, once.
		challenge := res.Header.Get("WWW-Authenticate")
		res.Body.Close()
		tok, err := g.registryToken(ctx, u, challenge)
		if err != nil {
			return nil, err
		}
		if g.bearer == nil {
			g.bearer = new(string) // this call's only: getters are made with one
		}
		*g.bearer = tok
		if res, err = g.do(ctx, u, accept); err != nil {
			return nil, err
		}
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return nil, &registryNotFound{api.Errorf(api.CodeNotFound, "fetching %s: the registry answered %s", u, res.Status)}
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, api.Errorf(api.CodeUnauthorized, "fetching %s: the registry answered %s: oci:// pulls anonymously, or with the configured Cairn server's token from its own registry", u, res.Status)
	case http.StatusForbidden:
		return nil, api.Errorf(api.CodeForbidden, "fetching %s: the registry answered %s", u, res.Status)
	default:
		return nil, api.Errorf(api.CodeNotFound, "fetching %s: the registry answered %s", u, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, api.Errorf(api.CodeTooLarge, "fetching %s: more than %d bytes", u, max)
	}
	if d != "" {
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != d {
			return nil, &VerifyError{Code: ExitHashMismatch, Target: u, Detail: fmt.Sprintf("the registry sent content with digest %s for %s", got, d)}
		}
	}
	return b, nil
}

func parseOCIManifest(b []byte, what string) (*ociDoc, error) {
	var doc ociDoc
	if err := strictjson.Check(b, strictjson.FieldsOf(doc)); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Target: what, Detail: "the manifest has more than one reading: " + err.Error(), Err: err}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Target: what, Detail: "the manifest does not parse: " + err.Error(), Err: err}
	}
	return &doc, nil
}

// FetchOCIArtifact fetches the manifest ref names, by digest, and the Sigstore bundles
// its referrers carry. token, if set, is sent as the password of Basic auth.
func FetchOCIArtifact(ctx context.Context, hc *http.Client, ref OCIRef, token string) (*OCIArtifact, error) {
	g := ociGetter{hc: hc, token: token, bearer: new(string)}
	var raw []byte
	var err error
	if ref.Digest == "" {
		// A tag is resolved once, here: the manifest's own bytes give its digest, and
		// everything after (layers, referrers) is checked against that digest.
		if raw, err = g.get(ctx, ref.Base+"/manifests/"+ref.Tag, "application/vnd.oci.image.manifest.v1+json", "", maxManifest); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		ref.Digest = "sha256:" + hex.EncodeToString(sum[:])
	} else if raw, err = g.get(ctx, ref.Base+"/manifests/"+ref.Digest, "application/vnd.oci.image.manifest.v1+json", ref.Digest, maxManifest); err != nil {
		return nil, err
	}
	doc, err := parseOCIManifest(raw, ref.String())
	if err != nil {
		return nil, err
	}
	a := &OCIArtifact{Ref: ref, Manifest: raw, MediaType: doc.MediaType}
	if doc.Config.Digest != "" {
		if _, err := api.ParseDigest(doc.Config.Digest); err != nil || !strings.HasPrefix(doc.Config.Digest, "sha256:") || doc.Config.Size < 0 || doc.Config.Size > maxManifest {
			return nil, &VerifyError{Code: ExitMalformed, Target: ref.String(), Detail: fmt.Sprintf("the config descriptor (%.80s, %d bytes) is not a sha256 blob of at most %d bytes", doc.Config.Digest, doc.Config.Size, maxManifest)}
		}
		a.Config = &OCILayer{Name: "config", Digest: doc.Config.Digest, Size: doc.Config.Size}
	}
	seen := map[string]bool{}
	for _, l := range doc.Layers {
		name := l.Annotations["org.opencontainers.image.title"]
		if name == "" || name != filepath.Base(name) || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			return nil, &VerifyError{Code: ExitMalformed, Target: ref.String(), Detail: fmt.Sprintf("layer %s has no usable file name (org.opencontainers.image.title %.100q)", l.Digest, name)}
		}
		if _, err := api.ParseDigest(l.Digest); err != nil || !strings.HasPrefix(l.Digest, "sha256:") || l.Size < 0 || seen[name] {
			return nil, &VerifyError{Code: ExitMalformed, Target: ref.String(), Detail: fmt.Sprintf("layer %.100q (%.80s) is not a sha256 layer with a unique name", name, l.Digest)}
		}
		seen[name] = true
		a.Layers = append(a.Layers, OCILayer{Name: name, Digest: l.Digest, Size: l.Size})
	}
	idxRaw, err := g.get(ctx, ref.Base+"/referrers/"+ref.Digest+"?artifactType="+url.QueryEscape(api.ArtifactTypeSigstoreBundle), "", "", maxManifest)
	var nf *registryNotFound
	if errors.As(err, &nf) {
		// A registry without the referrers API (the distribution registry, v3 included)
		// answers 404; clients then read the referrers tag schema (distribution-spec
		// v1.1 "Referrers Tag Schema"): an image index tagged sha256-<hex>, which oras and
		// cosign maintain when they push a referrer there. No such tag: no referrers.
		idxRaw, err = g.get(ctx, ref.Base+"/manifests/sha256-"+strings.TrimPrefix(ref.Digest, "sha256:"), "application/vnd.oci.image.index.v1+json", "", maxManifest)
		if errors.As(err, &nf) {
			idxRaw, err = []byte(`{"manifests":[]}`), nil
		}
	}
	if err != nil {
		return nil, err
	}
	var idx struct {
		Manifests []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"manifests"`
	}
	// Unsigned, like every registry answer, but read one way only: a referrer that Go's
	// case-folding decoder would see and another client would not (or the reverse) is refused.
	if err := strictjson.Check(idxRaw, strictjson.FieldsOf(idx)); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Target: ref.String(), Detail: "the referrers index has more than one reading: " + err.Error(), Err: err}
	}
	if err := json.Unmarshal(idxRaw, &idx); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Target: ref.String(), Detail: "the referrers index does not parse: " + err.Error(), Err: err}
	}
	for _, m := range idx.Manifests {
		if m.ArtifactType != api.ArtifactTypeSigstoreBundle || !strings.HasPrefix(m.Digest, "sha256:") {
			continue // a registry that does not filter
		}
		mraw, err := g.get(ctx, ref.Base+"/manifests/"+m.Digest, "application/vnd.oci.image.manifest.v1+json", m.Digest, maxManifest)
		if err != nil {
			return nil, err
		}
		md, err := parseOCIManifest(mraw, ref.Repo+"@"+m.Digest)
		if err != nil {
			return nil, err
		}
		if len(md.Layers) != 1 || md.Layers[0].MediaType != api.MediaSigstoreBundle || !strings.HasPrefix(md.Layers[0].Digest, "sha256:") {
			continue // not a bundle in cosign's layout
		}
		b, err := g.get(ctx, ref.Base+"/blobs/"+md.Layers[0].Digest, "", md.Layers[0].Digest, attest.MaxBundleBytes)
		if err != nil {
			return nil, err
		}
		a.Bundles = append(a.Bundles, OCIBundle{Raw: b, FileDigest: md.Annotations[api.AnnotationAttestedFileDigest]})
	}
	return a, nil
}

// Attestations verifies the bundles about layer l (or, for bundles that name no file, the
// manifest itself) offline against tr and returns those that verify; a bundle that does
// not verify is left out and counted in refused. A public-key bundle verifies only with
// one of keys, the keys the user gave (cosign verify --key's); none: keyless only.
func (a *OCIArtifact) Attestations(tr *attest.TrustedRoot, l OCILayer, keys []crypto.PublicKey) (ok []VerifiedAttestation, refused int) {
	for _, b := range a.Bundles {
		subject := l.Digest
		if b.FileDigest != "" && b.FileDigest != l.Digest {
			continue
		}
		if b.FileDigest == "" {
			subject = a.Ref.Digest // cosign attest on the artifact: the statement names the manifest
		}
		v, err := attest.Verify(tr, b.Raw, strings.TrimPrefix(subject, "sha256:"))
		for _, k := range keys {
			if err == nil {
				break
			}
			v, err = attest.VerifyWithLocalKey(tr, b.Raw, strings.TrimPrefix(subject, "sha256:"), k)
		}
		if err != nil {
			refused++
			continue
		}
		ok = append(ok, VerifiedAttestation{Attestation: v.Attestation})
	}
	return ok, refused
}

// MaxOCILayer bounds one layer that oci:// downloads (it is held in memory to be checked).
const MaxOCILayer = 256 << 20

// DownloadOCILayers writes the artifact's layers into dir by their titles. Each is streamed
// into a temporary file and checked against its size and digest; only when all verified
// are they moved into place.
func DownloadOCILayers(ctx context.Context, hc *http.Client, a *OCIArtifact, token, dir string) ([]DownloadedFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(dir, ".cairn-oci-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory in %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	g := ociGetter{hc: hc, token: token, bearer: new(string)}
	var out []DownloadedFile
	for _, l := range a.Layers {
		b, err := g.blob(ctx, a, l)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tmp, l.Name), b, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", l.Name, err)
		}
		out = append(out, DownloadedFile{File: api.File{Name: l.Name, Length: l.Size, SHA256: strings.TrimPrefix(l.Digest, "sha256:")}, LocalPath: filepath.Join(dir, l.Name)})
	}
	for _, f := range out {
		if err := os.Rename(filepath.Join(tmp, f.Name), f.LocalPath); err != nil {
			return nil, fmt.Errorf("moving %s into place: %w", f.Name, err)
		}
	}
	return out, nil
}

// blob fetches one blob of the artifact, bounded by MaxOCILayer and checked against its
// descriptor's digest and size.
func (g ociGetter) blob(ctx context.Context, a *OCIArtifact, l OCILayer) ([]byte, error) {
	if l.Size > MaxOCILayer {
		return nil, api.Errorf(api.CodeTooLarge, "layer %s (%s) is %d bytes; oci:// downloads layers of at most %d", l.Name, l.Digest, l.Size, int64(MaxOCILayer))
	}
	b, err := g.get(ctx, a.Ref.Base+"/blobs/"+l.Digest, "", l.Digest, l.Size)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != l.Size {
		return nil, &VerifyError{Code: ExitHashMismatch, Target: l.Name, Detail: fmt.Sprintf("blob %s is %d bytes, its descriptor says %d", l.Digest, len(b), l.Size)}
	}
	return b, nil
}

// WriteOCILayout writes the artifact as an OCI image layout into dir, which must not exist
// or be empty: oci-layout, index.json naming the manifest (with the tag it was named by as
// org.opencontainers.image.ref.name), and the manifest, its config and its layers under
// blobs/sha256/. Every blob is fetched and checked against its digest and size into a
// staging directory first; only when all verified is the layout moved into place. It
// returns the layers as written.
func WriteOCILayout(ctx context.Context, hc *http.Client, a *OCIArtifact, token, dir string) ([]DownloadedFile, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, api.Errorf(api.CodeBadRequest, "--oci-layout %s is not empty: give a new or empty directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(dir, ".cairn-oci-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory in %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	blobs := filepath.Join(tmp, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", blobs, err)
	}
	write := func(digest string, b []byte) error {
		name := filepath.Join(blobs, strings.TrimPrefix(digest, "sha256:"))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			return fmt.Errorf("writing blob %s: %w", digest, err)
		}
		return nil
	}
	if err := write(a.Ref.Digest, a.Manifest); err != nil {
		return nil, err
	}
	g := ociGetter{hc: hc, token: token, bearer: new(string)}
	if a.Config != nil {
		b, err := g.blob(ctx, a, *a.Config)
		if err != nil {
			return nil, err
		}
		if err := write(a.Config.Digest, b); err != nil {
			return nil, err
		}
	}
	var out []DownloadedFile
	for _, l := range a.Layers {
		b, err := g.blob(ctx, a, l)
		if err != nil {
			return nil, err
		}
		if err := write(l.Digest, b); err != nil {
			return nil, err
		}
		hexd := strings.TrimPrefix(l.Digest, "sha256:")
		out = append(out, DownloadedFile{File: api.File{Name: l.Name, Length: l.Size, SHA256: hexd}, LocalPath: filepath.Join(dir, "blobs", "sha256", hexd)})
	}
	desc := map[string]any{"mediaType": cmp.Or(a.MediaType, "application/vnd.oci.image.manifest.v1+json"), "digest": a.Ref.Digest, "size": len(a.Manifest)}
	if a.Ref.Tag != "" {
		desc["annotations"] = map[string]string{"org.opencontainers.image.ref.name": a.Ref.Tag}
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{desc}})
	if err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{"index.json": index, "oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", name, err)
		}
	}
	for _, name := range []string{"blobs", "index.json", "oci-layout"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("moving %s into place: %w", name, err)
		}
	}
	return out, nil
}

// registryNotFound is a registry's 404: a missing manifest or blob, or (for the referrers
// endpoint) a registry without the referrers API.
type registryNotFound struct{ err error }

func (e *registryNotFound) Error() string { return e.err.Error() }
func (e *registryNotFound) Unwrap() error { return e.err }

// do sends one GET with the getter's credentials: the registry token if it has one, else
// the Cairn token as Basic auth (set only for the configured server's own registry).
func (g ociGetter) do(ctx context.Context, u, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	switch {
	case g.bearer != nil && *g.bearer != "":
		req.Header.Set("Authorization", "Bearer "+*g.bearer)
	case g.token != "":
		req.SetBasicAuth("cairn", g.token)
	}
	res, err := g.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	return res, nil
}

// maxRegistryToken bounds a token service's answer.
const maxRegistryToken = 64 << 10

// registryToken answers a "Bearer realm=…,service=…,scope=…" challenge for u: it asks the
// realm (https, or http on loopback) for a pull token, sending the Cairn token only when
// the getter has one (its own registry), and returns the token.
func (g ociGetter) registryToken(ctx context.Context, u, challenge string) (string, error) {
	scheme, params, _ := strings.Cut(challenge, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", api.Errorf(api.CodeUnauthorized, "fetching %s: the registry wants credentials (%.100q) and oci:// pulls anonymously or with the configured server's token", u, challenge)
	}
	p := parseChallenge(params)
	realm, err := CheckFetchURL(p["realm"])
	if err != nil {
		return "", fmt.Errorf("fetching %s: the registry's token service: %w", u, err)
	}
	q := realm.Query()
	if p["service"] != "" {
		q.Set("service", p["service"])
	}
	if p["scope"] != "" {
		q.Set("scope", p["scope"])
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	if g.token != "" {
		req.SetBasicAuth("cairn", g.token)
	}
	res, err := g.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking %s for a registry token: %w", realm.Redacted(), err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", api.Errorf(api.CodeUnauthorized, "asking %s for a registry token: %s", realm.Redacted(), res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxRegistryToken+1))
	if err != nil || len(b) > maxRegistryToken {
		return "", api.Errorf(api.CodeTooLarge, "asking %s for a registry token: the answer is unreadable or larger than %d bytes", realm.Redacted(), maxRegistryToken)
	}
	var t struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := strictjson.Check(b, strictjson.FieldsOf(t)); err != nil {
		return "", api.Wrap(api.CodeMalformedJSON, err, "the token service's answer has more than one reading: %v", err)
	}
	if err := json.Unmarshal(b, &t); err != nil || cmp.Or(t.Token, t.AccessToken) == "" {
		return "", api.Errorf(api.CodeMalformedJSON, "asking %s for a registry token: the answer holds no token", realm.Redacted())
	}
	return cmp.Or(t.Token, t.AccessToken), nil
}

// parseChallenge reads the key="value" pairs of a WWW-Authenticate challenge.
func parseChallenge(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				break
			}
			v, rest = rest[1:1+end], rest[2+end:]
		} else {
			v, rest, _ = strings.Cut(rest, ",")
			rest = "," + rest
		}
		out[k] = v
		s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ","))
	}
	return out
}
