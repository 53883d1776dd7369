package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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

// OCIRef is oci://HOST/REPO@sha256:HEX.
type OCIRef struct {
	Base   string // scheme://host/v2/repo
	Repo   string
	Digest string // sha256:hex
}

func (r OCIRef) String() string {
	u, _ := url.Parse(r.Base)
	return u.Host + "/" + r.Repo + "@" + r.Digest
}

// ParseOCIRef reads oci://HOST[:PORT]/REPO@sha256:HEX. A tag is refused: this mode fetches
// by digest only. The registry is reached over https, or plain http on loopback only.
func ParseOCIRef(s string) (OCIRef, error) {
	rest, ok := strings.CutPrefix(s, "oci://")
	if !ok {
		return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q is not an oci:// reference", s)
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host == "" || path == "" {
		return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q names no repository: use oci://REGISTRY/REPO@sha256:DIGEST", s)
	}
	repo, dig, ok := strings.Cut(path, "@")
	if !ok {
		return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q has no digest: oci:// fetches by digest only (oci://REGISTRY/REPO@sha256:DIGEST; resolve a tag with `oras resolve` and check what it names)", s)
	}
	if _, err := api.ParseDigest(dig); err != nil || !strings.HasPrefix(dig, "sha256:") {
		return OCIRef{}, api.Errorf(api.CodeBadRequest, "%.200q: the digest must be sha256:<64 hex digits>", s)
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
	return OCIRef{Base: u.String(), Repo: repo, Digest: dig}, nil
}

// OCILayer is one file of an artifact: a layer titled by org.opencontainers.image.title.
type OCILayer struct {
	Name   string
	Digest string
	Size   int64
}

// OCIArtifact is an artifact fetched by digest with the bundles attached to it.
type OCIArtifact struct {
	Ref      OCIRef
	Manifest []byte
	Layers   []OCILayer
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
	Layers    []struct {
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
}

// get reads u (at most max bytes) and checks it against digest d when d is given.
func (g ociGetter) get(ctx context.Context, u, accept, d string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if g.token != "" {
		req.SetBasicAuth("cairn", g.token)
	}
	res, err := g.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
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
	g := ociGetter{hc: hc, token: token}
	raw, err := g.get(ctx, ref.Base+"/manifests/"+ref.Digest, "application/vnd.oci.image.manifest.v1+json", ref.Digest, maxManifest)
	if err != nil {
		return nil, err
	}
	doc, err := parseOCIManifest(raw, ref.String())
	if err != nil {
		return nil, err
	}
	a := &OCIArtifact{Ref: ref, Manifest: raw}
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
// not verify is left out and counted in refused.
func (a *OCIArtifact) Attestations(tr *attest.TrustedRoot, l OCILayer) (ok []VerifiedAttestation, refused int) {
	for _, b := range a.Bundles {
		subject := l.Digest
		if b.FileDigest != "" && b.FileDigest != l.Digest {
			continue
		}
		if b.FileDigest == "" {
			subject = a.Ref.Digest // cosign attest on the artifact: the statement names the manifest
		}
		v, err := attest.Verify(tr, b.Raw, strings.TrimPrefix(subject, "sha256:"))
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
	g := ociGetter{hc: hc, token: token}
	var out []DownloadedFile
	for _, l := range a.Layers {
		if l.Size > MaxOCILayer {
			return nil, api.Errorf(api.CodeTooLarge, "layer %s (%s) is %d bytes; oci:// downloads layers of at most %d", l.Name, l.Digest, l.Size, int64(MaxOCILayer))
		}
		b, err := g.get(ctx, a.Ref.Base+"/blobs/"+l.Digest, "", l.Digest, l.Size)
		if err != nil {
			return nil, err
		}
		if int64(len(b)) != l.Size {
			return nil, &VerifyError{Code: ExitHashMismatch, Target: l.Name, Detail: fmt.Sprintf("layer %s is %d bytes, its descriptor says %d", l.Digest, len(b), l.Size)}
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
