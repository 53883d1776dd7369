package mirror

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
)

// OCI artifacts in a bundle and in a mirror directory. A bundle carries, for each OCI
// repository of an exported project (<project> and <project>/…), every manifest a tag or
// the referrers API reaches, as its exact bytes, every blob those manifests reference,
// and a repository record (tags and manifest media types). Each is a layer of the
// bundle's manifest, at the path a mirror serves it under, so the bundle's own digest
// check covers every byte and a static server can serve most of it as files:
//
//	v2/<repo>/manifests/sha256:<hex>   a manifest, exact bytes (MediaTypeOCIManifest)
//	v2/<repo>/blobs/sha256:<hex>       a blob (MediaTypeOCIBlob)
//	v2/<repo>/_repository.json         the repository record (MediaTypeOCIRepository)
//
// An import derives from them, for the mirror to serve:
//
//	v2/<repo>/manifests/<tag>          the tagged manifest's bytes
//	v2/<repo>/tags/list                {"name":…,"tags":[…]}
//	v2/<repo>/referrers/sha256:<hex>   the referrers API's image index, for every manifest
//
// A repository record describes the whole repository at export time: an import replaces
// the mirror's record and derived files of that repository (tags may move), while
// manifests and blobs, named by digest, are immutable.
const (
	MediaTypeOCIManifest   = "application/vnd.cairn.oci.manifest.v1"
	MediaTypeOCIBlob       = "application/vnd.cairn.oci.blob.v1"
	MediaTypeOCIRepository = "application/vnd.cairn.oci.repository.v1+json"

	// OCIRepositoryFile is the record's name in its repository's directory; a repository
	// name component cannot start with "_", so no repository's files can collide with it.
	OCIRepositoryFile = "_repository.json"

	// MaxOCIManifest bounds one manifest, as cairnd's registry does by default.
	MaxOCIManifest = 4 << 20
)

// OCI media types of manifests the bundle carries, and of the referrers index.
const (
	OCIImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	OCIImageIndex     = "application/vnd.oci.image.index.v1+json"
	DockerManifest    = "application/vnd.docker.distribution.manifest.v2+json"
	DockerManifestLst = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// OCIRepository is a repository record: its tags and manifests at export time.
type OCIRepository struct {
	Name string `json:"name"`
	// Tags maps each tag to the digest of its manifest.
	Tags map[string]string `json:"tags"`
	// Manifests are every manifest of the repository the bundle carries, sorted by digest,
	// with the media type the registry served it with (a manifest need not name its own).
	Manifests []OCIManifestRef `json:"manifests"`
}

// OCIManifestRef is one manifest of a repository record.
type OCIManifestRef struct {
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
}

// Manifest returns the record's entry of digest d.
func (r *OCIRepository) Manifest(d string) (OCIManifestRef, bool) {
	i, ok := slices.BinarySearchFunc(r.Manifests, d, func(m OCIManifestRef, d string) int { return strings.Compare(m.Digest, d) })
	if !ok {
		return OCIManifestRef{}, false
	}
	return r.Manifests[i], true
}

// ParseOCIRepository reads a repository record strictly.
func ParseOCIRepository(raw []byte) (*OCIRepository, error) {
	var r OCIRepository
	if err := decodeStrict(raw, &r); err != nil {
		return nil, api.Wrap(api.CodeMalformedJSON, err, "the OCI repository record does not parse")
	}
	if !slices.IsSortedFunc(r.Manifests, func(a, b OCIManifestRef) int { return strings.Compare(a.Digest, b.Digest) }) ||
		len(slices.CompactFunc(slices.Clone(r.Manifests), func(a, b OCIManifestRef) bool { return a.Digest == b.Digest })) != len(r.Manifests) {
		return nil, api.Errorf(api.CodeMalformedJSON, "the OCI repository record of %.120q lists its manifests out of order or twice", r.Name)
	}
	return &r, nil
}

// Encode returns the record's bytes (manifests sorted by digest).
func (r *OCIRepository) Encode() ([]byte, error) {
	slices.SortFunc(r.Manifests, func(a, b OCIManifestRef) int { return strings.Compare(a.Digest, b.Digest) })
	if r.Tags == nil {
		r.Tags = map[string]string{}
	}
	return json.Marshal(r)
}

// The distribution spec's grammars (as cairnd's registry uses them).
var (
	ociNameRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	ociTagRE    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	ociDigestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ociReserved are the path components the routes use after a repository name: a nested
// repository whose name has one of them after the first component would share files
// (and URLs) with its parent's.
var ociReserved = map[string]bool{"manifests": true, "blobs": true, "tags": true, "referrers": true, "uploads": true}

// CheckOCIRepoName checks an OCI repository name a bundle may carry: the spec's grammar,
// at most 255 characters, and no component after the first that the routes use.
func CheckOCIRepoName(name string) error {
	if len(name) > 255 || !ociNameRE.MatchString(name) {
		return api.Errorf(api.CodeInvalidPath, "OCI repository name %.120q is not a valid repository name", name)
	}
	for _, c := range strings.Split(name, "/")[1:] {
		if ociReserved[c] {
			return api.Errorf(api.CodeInvalidPath, "OCI repository %.120q has a component %q, which a mirror cannot serve apart from its parent's routes", name, c)
		}
	}
	return nil
}

// CheckOCITag checks a tag against the spec's grammar.
func CheckOCITag(tag string) error {
	if !ociTagRE.MatchString(tag) {
		return api.Errorf(api.CodeInvalidPath, "OCI tag %.140q is not a valid tag", tag)
	}
	return nil
}

// IsOCIDigest says whether d is a sha256 digest in its canonical form (bundles carry
// sha256 only).
func IsOCIDigest(d string) bool { return ociDigestRE.MatchString(d) }

// OCIPath splits the path of an OCI file of a bundle: "v2/<repo>/manifests/sha256:<hex>",
// "v2/<repo>/blobs/sha256:<hex>" or "v2/<repo>/_repository.json". kind is "manifests",
// "blobs" or "repository"; digest is "" for the record.
func OCIPath(path string) (repo, kind, digest string, err error) {
	rest, ok := strings.CutPrefix(path, "v2/")
	if !ok {
		return "", "", "", api.Errorf(api.CodeInvalidPath, "OCI file %.120q is not under v2/", path)
	}
	if r, ok := strings.CutSuffix(rest, "/"+OCIRepositoryFile); ok {
		return r, "repository", "", CheckOCIRepoName(r)
	}
	i := strings.LastIndex(rest, "/")
	j := strings.LastIndex(rest[:max(i, 0)], "/")
	if i < 0 || j < 0 {
		return "", "", "", api.Errorf(api.CodeInvalidPath, "OCI file %.120q is not v2/<repo>/{manifests,blobs}/sha256:<hex>", path)
	}
	repo, kind, digest = rest[:j], rest[j+1:i], rest[i+1:]
	if (kind != "manifests" && kind != "blobs") || !IsOCIDigest(digest) {
		return "", "", "", api.Errorf(api.CodeInvalidPath, "OCI file %.120q is not v2/<repo>/{manifests,blobs}/sha256:<hex>", path)
	}
	return repo, kind, digest, CheckOCIRepoName(repo)
}

// OCIDescriptor is the part of an OCI content descriptor a mirror looks at.
type OCIDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
}

// OCIManifest is what a mirror reads from a manifest: what it references and what the
// referrers API reports of it. Unknown fields are ignored (manifests are the pushers').
type OCIManifest struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *OCIDescriptor    `json:"config"`
	Layers       []OCIDescriptor   `json:"layers"`
	Manifests    []OCIDescriptor   `json:"manifests"`
	Subject      *OCIDescriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

// ParseOCIManifest reads a manifest of media type mediaType (the record's): it must parse
// one way only, and name the same media type if it names one.
func ParseOCIManifest(raw []byte, mediaType string) (*OCIManifest, error) {
	switch mediaType {
	case OCIImageManifest, OCIImageIndex, DockerManifest, DockerManifestLst:
	default:
		return nil, api.Errorf(api.CodeUnsupported, "manifest media type %.80q is not one a mirror serves (OCI or Docker v2 manifests and indexes)", mediaType)
	}
	if len(raw) > MaxOCIManifest {
		return nil, api.Errorf(api.CodeTooLarge, "the manifest is %d bytes, more than %d", len(raw), MaxOCIManifest)
	}
	var m OCIManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, api.Wrap(api.CodeMalformedJSON, err, "the manifest does not parse")
	}
	if m.MediaType != "" && m.MediaType != mediaType {
		return nil, api.Errorf(api.CodeDigestMismatch, "the manifest says its media type is %.80q, the repository record %.80q", m.MediaType, mediaType)
	}
	if m.MediaType == "" {
		m.MediaType = mediaType
	}
	return &m, nil
}

// IsIndex says whether the manifest lists manifests rather than blobs.
func (m *OCIManifest) IsIndex() bool {
	return m.MediaType == OCIImageIndex || m.MediaType == DockerManifestLst
}

// Blobs are the blobs the manifest references that a registry must hold: the config
// and the layers, except non-distributable layers (with urls).
func (m *OCIManifest) Blobs() []OCIDescriptor {
	var out []OCIDescriptor
	if m.IsIndex() {
		return nil
	}
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	for _, l := range m.Layers {
		if len(l.URLs) == 0 {
			out = append(out, l)
		}
	}
	return out
}

// ReferrerArtifactType is the artifact type the referrers API reports for the manifest:
// its artifactType, else its config's media type (distribution spec 1.1).
func (m *OCIManifest) ReferrerArtifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil && !m.IsIndex() {
		return m.Config.MediaType
	}
	return ""
}

// ReferrersIndex is the referrers API's answer: an image index of descriptors.
func ReferrersIndex(refs []OCIDescriptor) ([]byte, error) {
	if refs == nil {
		refs = []OCIDescriptor{}
	}
	slices.SortFunc(refs, func(a, b OCIDescriptor) int { return strings.Compare(a.Digest, b.Digest) })
	b, err := json.Marshal(struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     []OCIDescriptor `json:"manifests"`
	}{2, OCIImageIndex, refs})
	if err != nil {
		return nil, fmt.Errorf("encoding a referrers index: %w", err)
	}
	return b, nil
}

// OCIServed returns the files a mirror derives from the bundle's OCI repositories (see
// the list at the top of this file): for each repository record, its tags list, a copy
// of each tagged manifest under its tag, and the referrers index of every manifest of the
// repository and of every subject its manifests name. It reads the manifests the bundle
// carries, or, for one it does not, base (the mirror the bundle is applied to; may be
// nil). The caller verified the bundle.
func OCIServed(b *Bundle, base *Dir) ([]File, error) {
	var out []File
	for _, f := range b.Files {
		if f.MediaType != MediaTypeOCIRepository {
			continue
		}
		repo, _, _, err := OCIPath(f.Path)
		if err != nil {
			return nil, err
		}
		raw, err := f.ReadAll(1 << 30)
		if err != nil {
			return nil, err
		}
		rec, err := ParseOCIRepository(raw)
		if err != nil {
			return nil, err
		}
		dir := "v2/" + repo + "/"
		manifest := func(d string) (File, []byte, error) {
			p := dir + "manifests/" + d
			if mf, ok := b.File(p); ok {
				mb, err := mf.ReadAll(MaxOCIManifest)
				return mf, mb, err
			}
			if base == nil {
				return File{}, nil, fmt.Errorf("OCI manifest %s is not in the bundle", p)
			}
			mb, err := base.ReadFile(p, MaxOCIManifest)
			if err != nil {
				return File{}, nil, err
			}
			return BytesFile(p, MediaTypeOCIManifest, mb), mb, nil
		}
		tags := make([]string, 0, len(rec.Tags))
		for t, d := range rec.Tags {
			tags = append(tags, t)
			_, mb, err := manifest(d)
			if err != nil {
				return nil, err
			}
			out = append(out, BytesFile(dir+"manifests/"+t, MediaTypeOCIManifest, mb))
		}
		slices.Sort(tags)
		tl, err := json.Marshal(map[string]any{"name": repo, "tags": tags})
		if err != nil {
			return nil, fmt.Errorf("encoding the tags of %s: %w", repo, err)
		}
		out = append(out, BytesFile(dir+"tags/list", "", tl))
		refs := map[string][]OCIDescriptor{}
		for _, e := range rec.Manifests {
			refs[e.Digest] = refs[e.Digest]
			_, mb, err := manifest(e.Digest)
			if err != nil {
				return nil, err
			}
			m, err := ParseOCIManifest(mb, e.MediaType)
			if err != nil {
				return nil, fmt.Errorf("OCI manifest %s of %s: %w", e.Digest, repo, err)
			}
			if m.Subject == nil || !IsOCIDigest(m.Subject.Digest) {
				continue
			}
			refs[m.Subject.Digest] = append(refs[m.Subject.Digest], OCIDescriptor{MediaType: e.MediaType, Digest: e.Digest,
				Size: int64(len(mb)), ArtifactType: m.ReferrerArtifactType(), Annotations: m.Annotations})
		}
		for d, list := range refs {
			ib, err := ReferrersIndex(list)
			if err != nil {
				return nil, err
			}
			out = append(out, BytesFile(dir+"referrers/"+d, "", ib))
		}
	}
	slices.SortFunc(out, func(x, y File) int { return strings.Compare(x.Path, y.Path) })
	return out, nil
}
