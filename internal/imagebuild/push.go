package imagebuild

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layout is what an image layout Build wrote holds.
type Layout struct {
	Tag   string        // ref.name of the image index
	Index v1.Descriptor // the multi-platform image index
	SBOMs []v1.Descriptor
	path  layout.Path
	root  v1.ImageIndex
}

// OpenLayout reads an OCI image layout written by Build: one image index named by a
// ref.name annotation, and SBOM referrer manifests.
func OpenLayout(dir string) (*Layout, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI image layout %s: %w (build it with make image)", dir, err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI image layout %s: %w", dir, err)
	}
	im, err := root.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI image layout %s: index.json: %w", dir, err)
	}
	l := &Layout{path: p, root: root}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType == types.OCIImageIndex && d.Annotations[refName] != "":
			if l.Tag != "" {
				return nil, fmt.Errorf("OCI image layout %s: more than one image index (%s, %s): not a layout make image wrote", dir, l.Tag, d.Annotations[refName])
			}
			l.Tag, l.Index = d.Annotations[refName], d
		case d.ArtifactType == SPDXMediaType:
			l.SBOMs = append(l.SBOMs, d)
		default:
			return nil, fmt.Errorf("OCI image layout %s: unexpected entry %s (%s) in index.json: not a layout make image wrote", dir, d.Digest, d.MediaType)
		}
	}
	if l.Tag == "" {
		return nil, fmt.Errorf("OCI image layout %s: no image index with a ref.name annotation in index.json: not a layout make image wrote", dir)
	}
	return l, nil
}

// Push copies the image index, its platform images and the SBOM referrers to repo, and
// tags the index with tag (the layout's own tag when empty). Referrers are pushed after
// their subjects. Authentication and transport come from opts (remote.WithAuthFromKeychain
// for the user's docker config).
func (l *Layout) Push(ctx context.Context, repo name.Repository, tag string, opts ...remote.Option) (name.Digest, error) {
	if tag == "" {
		tag = l.Tag
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	idx, err := l.root.ImageIndex(l.Index.Digest)
	if err != nil {
		return name.Digest{}, fmt.Errorf("reading the image index %s from the layout: %w", l.Index.Digest, err)
	}
	ref := repo.Tag(tag)
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	for _, d := range l.SBOMs {
		img, err := l.root.Image(d.Digest)
		if err != nil {
			return name.Digest{}, fmt.Errorf("reading the SBOM manifest %s from the layout: %w", d.Digest, err)
		}
		if err := remote.Write(repo.Digest(d.Digest.String()), img, opts...); err != nil {
			return name.Digest{}, fmt.Errorf("pushing the SBOM %s to %s: %w", d.Digest, repo, err)
		}
	}
	return repo.Digest(l.Index.Digest.String()), nil
}
