package oci

import (
	"context"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
)

// Attestations as referrers of releases (issue #12). Each attestation that the newest
// published attestation index of a release file commits is a referrer of the release's
// manifest: api.AttestationManifest (cosign's bundle layout: artifactType
// application/vnd.dev.sigstore.bundle.v0.3+json, one layer that is the bundle, the release
// manifest as subject), so `oras discover` and cosign find them. Like release manifests,
// these are derived on every request and never stored: the referrers list is the TUF
// index, read from the signed metadata (store.CommittedAttestations), not the table of
// posts. An attestation posted but not yet published is not a referrer until the publish
// that commits it, and nothing the OCI API does can add or remove one. The bundle layer is
// served from the stored bytes, whose digest the index names.

// attestationManifest is one derived referrer of a release.
type attestationManifest struct {
	Raw    []byte
	Digest string
	Ref    api.AttestationRef
}

func (a *attestationManifest) manifest(repo string) *store.OCIManifest {
	return &store.OCIManifest{Repo: repo, Digest: a.Digest, MediaType: MediaTypeImageManifest, ArtifactType: api.ArtifactTypeSigstoreBundle, Raw: a.Raw, Release: true}
}

func (a *attestationManifest) referrer() store.OCIReferrer {
	return store.OCIReferrer{Digest: a.Digest, MediaType: MediaTypeImageManifest, ArtifactType: api.ArtifactTypeSigstoreBundle, Size: int64(len(a.Raw)),
		Annotations: map[string]string{
			api.AnnotationBundleContent:       "dsse-envelope",
			api.AnnotationBundlePredicateType: a.Ref.PredicateType,
			api.AnnotationAttestedFile:        a.Ref.FileName,
			api.AnnotationAttestedFileDigest:  "sha256:" + a.Ref.FileSHA256,
		}}
}

// attestationManifests returns the derived referrers of each of rels, keyed by the
// release manifest's digest, in a fixed order: by file name, then bundle digest.
func (g *Registry) attestationManifests(ctx context.Context, rels []release) (map[string][]attestationManifest, error) {
	var files []string
	for _, rel := range rels {
		for _, f := range rel.Files {
			files = append(files, f.SHA256)
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	slices.Sort(files)
	committed, err := g.db.CommittedAttestations(ctx, slices.Compact(files))
	if err != nil || len(committed) == 0 {
		return nil, err
	}
	out := map[string][]attestationManifest{}
	for _, rel := range rels {
		fs := slices.Clone(rel.Files)
		slices.SortFunc(fs, func(a, b api.ReleaseFile) int { return strings.Compare(a.Name, b.Name) })
		for _, f := range fs {
			for _, c := range committed[f.SHA256] {
				ref := api.AttestationRef{FileName: f.Name, FileSHA256: f.SHA256, BundleSHA256: c.BundleSHA256, BundleSize: c.BundleSize, PredicateType: c.PredicateType}
				raw := api.AttestationManifest(rel.Raw, ref)
				out[rel.Digest] = append(out[rel.Digest], attestationManifest{Raw: raw, Digest: computeDigest("sha256", raw), Ref: ref})
			}
		}
	}
	return out, nil
}

// releaseReferrers returns the derived referrers of the release manifest d of repo whose
// artifact type is artifactType (any when ""); none if d is not a release's.
func (g *Registry) releaseReferrers(ctx context.Context, repo, d, artifactType string) ([]attestationManifest, error) {
	if artifactType != "" && artifactType != api.ArtifactTypeSigstoreBundle {
		return nil, nil
	}
	rel, err := g.releaseByDigest(ctx, repo, d)
	if err != nil || rel == nil {
		return nil, err
	}
	ms, err := g.attestationManifests(ctx, []release{*rel})
	return ms[rel.Digest], err
}

// attestationManifestByDigest returns the derived referrer of repo with digest d, or nil.
func (g *Registry) attestationManifestByDigest(ctx context.Context, repo, d string) (*attestationManifest, error) {
	if !strings.HasPrefix(d, "sha256:") {
		return nil, nil
	}
	rels, err := g.releases(ctx, repo, "")
	if err != nil || len(rels) == 0 {
		return nil, err
	}
	ms, err := g.attestationManifests(ctx, rels)
	if err != nil {
		return nil, err
	}
	for _, list := range ms {
		for i := range list {
			if list[i].Digest == d {
				return &list[i], nil
			}
		}
	}
	return nil, nil
}

// attestationBlob returns the bundle bytes of blob d of repo if d is the layer of one of
// its derived referrers: a bundle that a published index of a file of one of repo's
// published releases commits. Nil otherwise.
func (g *Registry) attestationBlob(ctx context.Context, repo, d string) ([]byte, error) {
	hexsum, ok := strings.CutPrefix(d, "sha256:")
	if !ok || strings.Contains(repo, "/") {
		return nil, nil
	}
	files, err := g.db.AttestationBundleFiles(ctx, repo, hexsum)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	committed, err := g.db.CommittedAttestations(ctx, files)
	if err != nil {
		return nil, err
	}
	for file, cs := range committed {
		for _, c := range cs {
			if c.BundleSHA256 == hexsum {
				_, raw, err := g.db.AttestationBundle(ctx, file, hexsum)
				return raw, err
			}
		}
	}
	return nil, nil
}
