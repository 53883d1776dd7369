package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-dev/cairn/api"
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
// Release tags are materialised when they are first read (or listed, or pushed over),
// not by a publish hook, and always follow TUF: the OCI API can neither move nor delete
// them, nor delete their manifests.

// emptyJSON is the OCI empty descriptor's content, the config of artifact manifests.
var emptyJSON = []byte("{}")

// syncReleases makes the release tags of repo (if it is a project) match its published
// releases: the one for tag, or all if tag is "".
func (g *Registry) syncReleases(ctx context.Context, repo, tag string) error {
	if strings.Contains(repo, "/") {
		return nil
	}
	files, err := g.db.PublishedReleaseFiles(ctx, repo, tag)
	if err != nil || len(files) == 0 {
		return err
	}
	byVersion := map[string][]api.ReleaseFile{}
	var versions []string
	for _, f := range files {
		if _, ok := byVersion[f.Version]; !ok {
			versions = append(versions, f.Version)
		}
		byVersion[f.Version] = append(byVersion[f.Version], api.ReleaseFile{Name: f.Filename, Length: f.Length, SHA256: f.SHA256})
	}
	current, err := g.db.OCITagDigests(ctx, repo) // one query, however many releases
	if err != nil {
		return err
	}
	for _, v := range versions {
		t := api.ReleaseTag(v)
		if !tagRE.MatchString(t) {
			continue // a version longer than a tag may be is not served over OCI
		}
		raw := api.ReleaseManifest(repo, v, byVersion[v])
		dig := computeDigest("sha256", raw)
		if current[t] == dig {
			continue
		}
		if err := g.exportRelease(ctx, repo, t, raw, dig, byVersion[v]); err != nil {
			return fmt.Errorf("exporting release %s %s as an OCI artifact: %w", repo, v, err)
		}
	}
	return nil
}

func (g *Registry) exportRelease(ctx context.Context, repo, tag string, raw []byte, dig string, files []api.ReleaseFile) error {
	cfg := computeDigest("sha256", emptyJSON)
	if _, ok, err := g.db.OCIBlobInRepo(ctx, repo, cfg); err != nil {
		return err
	} else if !ok {
		if err := g.storeMonolithic(ctx, repo, cfg, bytes.NewReader(emptyJSON)); err != nil {
			return err
		}
	}
	blobs := []string{cfg}
	for _, f := range files {
		d := "sha256:" + f.SHA256
		if _, err := g.blobs.StatDigest(ctx, d); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("release file %s (%s) is not in the blob store", f.Name, d)
			}
			return err
		}
		if err := g.db.OCILinkBlob(ctx, repo, d, f.Length, nil); err != nil {
			return err
		}
		blobs = append(blobs, d)
	}
	m, err := parseManifest(raw, MediaTypeImageManifest)
	if err != nil {
		return err
	}
	m.Repo, m.Digest, m.Tags = repo, dig, []string{tag}
	m.Release, m.ImmutableTags, m.ReleaseSync = true, true, true
	m.Blobs = blobs
	return g.db.OCIPutManifest(ctx, *m)
}
