package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
)

// Releases as OCI artifacts: every published release <project>/<version>/<file…> is also
// the OCI tag <project>:<version> (ReleaseTag) of the manifest ReleaseManifest builds. The
// manifest is a pure function of the release's TUF-signed files (name, length, sha256), so
// a client that verified the release through TUF rebuilds it and compares digests: the
// digest the tag resolves to is covered by the maintainers' signatures without a field of
// its own in the project role. Server (oci/) and clients (client/) share this one builder;
// changing its output changes every release's digest.

// ArtifactTypeRelease is the artifactType of release manifests.
const ArtifactTypeRelease = "application/vnd.cairn.release.v1"

// Media types of release manifests.
const (
	MediaTypeOCIManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIEmptyJSON = "application/vnd.oci.empty.v1+json"
)

// ReleaseFile is one file of a release, as TUF lists it.
type ReleaseFile struct {
	Name   string
	Length int64
	SHA256 string // hex
}

// ReleaseTag is the OCI tag of a release version: "+" (semver build metadata), which tags
// cannot hold, becomes "_".
func ReleaseTag(version string) string { return strings.ReplaceAll(version, "+", "_") }

// ReleaseManifest builds the artifact manifest of a release: an OCI image manifest with
// the empty config and one layer per file (titled by its name, sorted by name).
func ReleaseManifest(project, version string, files []ReleaseFile) []byte {
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Data        []byte            `json:"data,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	fs := append([]ReleaseFile(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	layers := make([]desc, 0, len(fs))
	for _, f := range fs {
		layers = append(layers, desc{MediaType: "application/octet-stream", Digest: "sha256:" + f.SHA256, Size: f.Length,
			Annotations: map[string]string{"org.opencontainers.image.title": f.Name}})
	}
	empty := []byte("{}")
	sum := sha256.Sum256(empty)
	m := struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        desc              `json:"config"`
		Layers        []desc            `json:"layers"`
		Annotations   map[string]string `json:"annotations"`
	}{
		SchemaVersion: 2,
		MediaType:     MediaTypeOCIManifest,
		ArtifactType:  ArtifactTypeRelease,
		Config:        desc{MediaType: MediaTypeOCIEmptyJSON, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(empty)), Data: empty},
		Layers:        layers,
		Annotations: map[string]string{
			"org.opencontainers.image.version": version,
			"dev.cairn.project":                project,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
