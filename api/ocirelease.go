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

// Attestations as OCI referrers (issue #12): every attestation that the newest published
// attestation index of a release file commits (tufrepo.AttestationIndex) is also a
// referrer of the release's manifest, laid out as cosign's bundle specification says
// (cosign specs/BUNDLE_SPEC.md, what `cosign attest --new-bundle-format` pushes): an image
// manifest of artifactType application/vnd.dev.sigstore.bundle.v0.3+json, the empty
// config, one layer that is the bundle, and the release manifest as subject. So `oras
// discover` and cosign find a release's attestations with no Cairn-specific client.
//
// Like the release manifest, AttestationManifest is a pure function of data a client can
// verify — the release manifest (from TUF), the file, the bundle's digest and size (from
// the TUF-signed index and the bytes) and its predicate type (from the bundle) — with no
// time in it (no org.opencontainers.image.created): the same attestation always has the
// same manifest digest, on every server and replica, and a client can rebuild it.

// ArtifactTypeSigstoreBundle is the artifactType of attestation manifests and the media
// type of their one layer.
const ArtifactTypeSigstoreBundle = MediaSigstoreBundle

// Annotations of attestation manifests: cosign's (dev.sigstore.*) and Cairn's, naming the
// release file the attestation is about (a release manifest has one layer per file).
const (
	AnnotationBundleContent       = "dev.sigstore.bundle.content"
	AnnotationBundlePredicateType = "dev.sigstore.bundle.predicateType"
	AnnotationAttestedFile        = "dev.cairn.attestation.file"
	AnnotationAttestedFileDigest  = "dev.cairn.attestation.file.digest"
)

// AttestationRef is one committed attestation of one release file.
type AttestationRef struct {
	FileName      string
	FileSHA256    string // hex
	BundleSHA256  string // hex
	BundleSize    int64
	PredicateType string
}

// AttestationManifest builds the referrer manifest of an attestation of a file of the
// release whose manifest is releaseManifest (ReleaseManifest's bytes). Cairn stores only
// DSSE-enveloped in-toto statements, so the bundle content is always "dsse-envelope".
func AttestationManifest(releaseManifest []byte, a AttestationRef) []byte {
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Data        []byte            `json:"data,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	empty := []byte("{}")
	esum := sha256.Sum256(empty)
	rsum := sha256.Sum256(releaseManifest)
	m := struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        desc              `json:"config"`
		Layers        []desc            `json:"layers"`
		Subject       desc              `json:"subject"`
		Annotations   map[string]string `json:"annotations"`
	}{
		SchemaVersion: 2,
		MediaType:     MediaTypeOCIManifest,
		ArtifactType:  ArtifactTypeSigstoreBundle,
		Config:        desc{MediaType: MediaTypeOCIEmptyJSON, Digest: "sha256:" + hex.EncodeToString(esum[:]), Size: int64(len(empty)), Data: empty},
		Layers: []desc{{MediaType: MediaSigstoreBundle, Digest: "sha256:" + a.BundleSHA256, Size: a.BundleSize,
			Annotations: map[string]string{"org.opencontainers.image.title": "sha256-" + a.BundleSHA256 + ".sigstore.json"}}},
		Subject: desc{MediaType: MediaTypeOCIManifest, Digest: "sha256:" + hex.EncodeToString(rsum[:]), Size: int64(len(releaseManifest))},
		Annotations: map[string]string{
			AnnotationBundleContent:       "dsse-envelope",
			AnnotationBundlePredicateType: a.PredicateType,
			AnnotationAttestedFile:        a.FileName,
			AnnotationAttestedFileDigest:  "sha256:" + a.FileSHA256,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
