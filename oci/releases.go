package oci

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
)

// Releases as OCI artifacts. Every published release <project>/<version>/<file…> is also
// the tag <project>:<version> ("+" in a version becomes "_", which tags cannot hold): an
// OCI image manifest of artifact type ArtifactTypeRelease with one layer per file, titled
// by file name, so `oras pull HOST/<project>:<version>` yields the files. The layers are
// the release files themselves (one copy in the blob store).
//
// The manifest is api.ReleaseManifest, a pure function of the TUF-signed target list (no
// timestamps), shared with clients: one that verified the release through TUF rebuilds it
// and compares digests (`cairn get --via oci`), so the digest the tag resolves to is
// covered by the maintainers' signature without a change to the project role format.
//
// Release manifests are derived from the published releases on every request and never
// stored: a read (GET, HEAD, a tag list) only reads, TUF stays the one authority on what
// a release holds, and the OCI API can neither move nor delete a release tag, nor delete
// a release manifest or file. (Before issue #9 they were written to the registry's tables
// when first read; rows written then are still there and are simply shadowed: the tag of
// a release always resolves to the manifest derived from TUF.)
//
// One tag, one release: the server refuses a release whose tag another release of the
// project already has (oci_tag_collision, tufrepo.checkReleaseTags), so 3.0+x and 3.0_x
// cannot both be published. For a collision accepted before that check, the release
// published first (the lowest role version that added a file to it; then the smaller
// version string) keeps the tag, so every read gives the same answer.

// emptyJSON is the OCI empty descriptor's content, the config of artifact manifests.
var emptyJSON = []byte("{}")

// emptyDigest is the digest of emptyJSON, the config blob of every release manifest.
var emptyDigest = computeDigest("sha256", emptyJSON)

// release is a published release as the registry serves it.
type release struct {
	Version string
	Tag     string
	Raw     []byte // api.ReleaseManifest
	Digest  string
	Files   []api.ReleaseFile
}

// releases derives the releases of repo (if it is a project repository) that the registry
// serves, one per tag, sorted by tag: all of them, or only the one tagged tag if tag is
// not "". It only reads.
func (g *Registry) releases(ctx context.Context, repo, tag string) ([]release, error) {
	if strings.Contains(repo, "/") {
		return nil, nil
	}
	files, err := g.db.PublishedReleaseFiles(ctx, repo, tag)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	type cand struct {
		version string
		first   int64 // the role version that published the release's first file
		files   []api.ReleaseFile
	}
	byVersion := map[string]*cand{}
	for _, f := range files {
		c := byVersion[f.Version]
		if c == nil {
			c = &cand{version: f.Version, first: f.RoleVersion}
			byVersion[f.Version] = c
		}
		c.first = min(c.first, f.RoleVersion)
		c.files = append(c.files, api.ReleaseFile{Name: f.Filename, Length: f.Length, SHA256: f.SHA256})
	}
	winners := map[string]*cand{}
	for _, c := range byVersion {
		t := api.ReleaseTag(c.version)
		if !tagRE.MatchString(t) {
			continue // a version longer than a tag may be is not served over OCI
		}
		w := winners[t]
		if w == nil || c.first < w.first || (c.first == w.first && c.version < w.version) {
			winners[t] = c
		}
	}
	out := make([]release, 0, len(winners))
	for t, c := range winners {
		raw := api.ReleaseManifest(repo, c.version, c.files)
		out = append(out, release{Version: c.version, Tag: t, Raw: raw, Digest: computeDigest("sha256", raw), Files: c.files})
	}
	slices.SortFunc(out, func(a, b release) int { return cmp.Compare(a.Tag, b.Tag) })
	return out, nil
}

// releaseByTag returns the release that tag names in repo, or nil.
func (g *Registry) releaseByTag(ctx context.Context, repo, tag string) (*release, error) {
	rels, err := g.releases(ctx, repo, tag)
	if err != nil || len(rels) == 0 {
		return nil, err
	}
	return &rels[0], nil
}

// releaseByDigest returns the release of repo whose manifest has digest d, or nil.
func (g *Registry) releaseByDigest(ctx context.Context, repo, d string) (*release, error) {
	rels, err := g.releases(ctx, repo, "")
	if err != nil {
		return nil, err
	}
	for i := range rels {
		if rels[i].Digest == d {
			return &rels[i], nil
		}
	}
	return nil, nil
}

// releaseManifest is the stored form of a release's manifest, for the read paths.
func (rel *release) manifest(repo string) *store.OCIManifest {
	return &store.OCIManifest{Repo: repo, Digest: rel.Digest, MediaType: MediaTypeImageManifest, ArtifactType: api.ArtifactTypeRelease, Raw: rel.Raw, Release: true}
}

// releaseBlob says whether blob d of repo is part of a published release: a release file
// (size > 0 or not, with the bytes in the blob store) or the empty config every release
// manifest names (served from memory: data is set).
func (g *Registry) releaseBlob(ctx context.Context, repo, d string) (ok bool, data []byte, err error) {
	dg, err := api.ParseDigest(d)
	if err != nil || strings.Contains(repo, "/") || dg.Algorithm != "sha256" {
		return false, nil, nil
	}
	if d == emptyDigest {
		rels, err := g.releases(ctx, repo, "")
		return len(rels) > 0, emptyJSON, err
	}
	_, ok, err = g.db.PublishedReleaseFileSize(ctx, repo, dg.Hex)
	return ok, nil, err
}

// releaseDenied is the refusal of a push over, or a delete of, a release tag.
func releaseTagDenied(repo string, rel *release, verb string) error {
	return errorf(api.CodeOCIReleaseImmutable, map[string]string{"tag": rel.Tag, "digest": rel.Digest, "version": rel.Version},
		"tag %s:%s is a published release and cannot be %s (it points at %s, release %s %s, as TUF signed it): push under another tag", repo, rel.Tag, verb, rel.Digest, repo, rel.Version)
}

// linkReleaseBlobs makes the release blobs (release files, the empty config) that a pushed
// manifest references part of repo, so that the manifest is stored like any other: the
// release manifest under another tag (`crane tag`), an artifact attached to a release
// with the empty config (`oras attach`). It runs only on a push, never on a read, and
// writes nothing if a blob is neither in repo nor a release's (the push is then refused).
func (g *Registry) linkReleaseBlobs(ctx context.Context, repo string, blobs []string) error {
	var link []string
	for _, d := range blobs {
		if _, ok, err := g.db.OCIBlobInRepo(ctx, repo, d); err != nil {
			return err
		} else if ok {
			continue
		}
		ok, _, err := g.releaseBlob(ctx, repo, d)
		if err != nil {
			return err
		}
		if !ok {
			return errorf(api.CodeOCIManifestBlobUnknown, map[string]string{"digest": d}, "the manifest references blob %s, which is not in repository %s: push the blob (or mount it) before the manifest", d, repo)
		}
		link = append(link, d)
	}
	for _, d := range link {
		if d == emptyDigest {
			if err := g.storeMonolithic(ctx, repo, emptyDigest, bytes.NewReader(emptyJSON)); err != nil {
				return err
			}
			continue
		}
		size, _, err := g.db.PublishedReleaseFileSize(ctx, repo, strings.TrimPrefix(d, "sha256:"))
		if err != nil {
			return err
		}
		if _, err := g.blobs.Content.Stat(ctx, d); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("release file %s is not in the blob store", d)
			}
			return err
		}
		if err := g.db.OCILinkBlob(ctx, repo, d, size, nil); err != nil {
			return err
		}
	}
	return nil
}
