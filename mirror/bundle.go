// Package mirror is the on-disk side of air-gapped mirrors (issue #14): the bundle format
// (an OCI image-layout tar holding the exact signed metadata bytes, release files and
// audit-log entries) and the mirror directory those bundles are imported into, laid out
// with the same URL paths cairnd serves.
//
// It does no TUF verification and no network I/O: the client package verifies a bundle
// through go-tuf before anything here writes it (client.VerifyBundle, client.ImportBundle).
// Reading a bundle is bounded (member count, member size, total size) and refuses any
// member that is not exactly where the format puts it, so a hostile tar cannot write
// outside the staging directory or exhaust the disk.
package mirror

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// Media types of the bundle's OCI artifact. The manifest's layers are the files; each
// layer's org.opencontainers.image.title annotation is the file's path in the mirror
// (metadata/…, targets/…, audit/log.json).
const (
	ArtifactType      = "application/vnd.cairn.mirror.bundle.v1"
	MediaTypeConfig   = "application/vnd.cairn.mirror.config.v1+json"
	MediaTypeMetadata = "application/vnd.cairn.tuf.metadata.v1+json"
	MediaTypeTarget   = "application/vnd.cairn.target.v1"
	MediaTypeAuditLog = "application/vnd.cairn.auditlog.v1+json"
	// MediaTypeMerkleProof is a Merkle snapshot inclusion proof (DESIGN.md "Merkle
	// snapshot"), as GET /api/v1/merkle/<timestamp>/<role> answers it, at
	// merkle/<timestamp>/<role>.json; a mirror serves it at that URL.
	MediaTypeMerkleProof = "application/vnd.cairn.merkle.proof.v1+json"
	// MediaTypeTlogEntry is the transparency-log entry of an online-signed metadata
	// version (GET /api/v1/log/transparency/<role>/<version>: DSSE statement, Rekor entry,
	// inclusion proof, checkpoint), at tlog/<role>/<version>.json. Not served.
	MediaTypeTlogEntry = "application/vnd.cairn.tlog.entry.v1+json"

	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	annotationTitle   = "org.opencontainers.image.title"
	annotationRefName = "org.opencontainers.image.ref.name"
	refName           = "cairn-mirror"

	// Format is Info.Format of every bundle this package writes and reads.
	Format = "cairn-mirror/1"
	// AuditLogPath is where the audit-log entries of the bundle's metadata live.
	AuditLogPath = "audit/log.json"
)

// Info is the bundle's OCI config: what was exported, from where and when. It is not
// signed: everything that matters in it is checked against the signed metadata, except
// ExportedAt, which SECURITY.md "Air-gapped mirrors" bounds by the site's maximum staleness.
type Info struct {
	Format           string    `json:"format"`
	Server           string    `json:"server"`
	ExportedAt       time.Time `json:"exported_at"`
	RootVersion      int64     `json:"root_version"`
	TimestampVersion int64     `json:"timestamp_version"`
	SnapshotVersion  int64     `json:"snapshot_version"`
	// All is true for --all; Projects are the selected projects otherwise (sorted).
	All      bool     `json:"all,omitempty"`
	Projects []string `json:"projects"`
	// Since is the snapshot version an incremental bundle applies on top of (0: full).
	Since int64 `json:"since,omitempty"`
}

// File is one file of a bundle, by its path in the mirror directory.
type File struct {
	Path      string // metadata/<N>.<role>.json, metadata/timestamp.json, targets/<p>/<v>/<sha256>.<f>, audit/log.json
	MediaType string
	Size      int64
	SHA256    string // hex
	// open reads the bytes; they were checked against SHA256 when the bundle was read.
	open func() (io.ReadCloser, error)
}

// Open returns the file's bytes.
func (f File) Open() (io.ReadCloser, error) { return f.open() }

// ReadAll returns the file's bytes, refusing more than max.
func (f File) ReadAll(max int64) ([]byte, error) {
	if f.Size > max {
		return nil, api.Errorf(api.CodeTooLarge, "bundle file %s is %d bytes, more than the %d allowed for its kind", f.Path, f.Size, max)
	}
	rc, err := f.open()
	if err != nil {
		return nil, fmt.Errorf("reading bundle file %s: %w", f.Path, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading bundle file %s: %w", f.Path, err)
	}
	return b, nil
}

// BytesFile is a File held in memory, for writers.
func BytesFile(path, mediaType string, b []byte) File {
	sum := sha256.Sum256(b)
	return File{Path: path, MediaType: mediaType, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]),
		open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

// OpenerFile is a File whose bytes come from open, for writers of large files; size and
// sha256 must be those of the bytes open returns (Write checks them).
func OpenerFile(path, mediaType string, size int64, sha256Hex string, open func() (io.ReadCloser, error)) File {
	return File{Path: path, MediaType: mediaType, Size: size, SHA256: sha256Hex, open: open}
}

// Bundle is a bundle's config and files, sorted by path.
type Bundle struct {
	Info  Info
	Files []File
}

// File returns the file at path.
func (b *Bundle) File(path string) (File, bool) {
	i, ok := slices.BinarySearchFunc(b.Files, path, func(f File, p string) int { return strings.Compare(f.Path, p) })
	if !ok {
		return File{}, false
	}
	return b.Files[i], true
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	ArtifactType  string       `json:"artifactType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

const ociLayout = `{"imageLayoutVersion":"1.0.0"}`

// tarTime is every member's modification time, so that the same content gives the same
// bytes (the export time is in Info).
var tarTime = time.Unix(0, 0).UTC()

// Write writes b as an OCI image-layout tar: oci-layout, index.json, then every blob under
// blobs/sha256/ in digest order, each once. The same Bundle always gives the same bytes.
func Write(w io.Writer, b *Bundle) error {
	files := slices.Clone(b.Files)
	slices.SortFunc(files, func(x, y File) int { return strings.Compare(x.Path, y.Path) })
	for i := 1; i < len(files); i++ {
		if files[i].Path == files[i-1].Path {
			return fmt.Errorf("writing bundle: file %s appears twice", files[i].Path)
		}
	}
	cfg, err := json.Marshal(b.Info)
	if err != nil {
		return fmt.Errorf("writing bundle config: %w", err)
	}
	cfgFile := BytesFile("", MediaTypeConfig, cfg)
	m := manifest{SchemaVersion: 2, MediaType: mediaTypeManifest, ArtifactType: ArtifactType,
		Config: descriptor{MediaType: MediaTypeConfig, Digest: "sha256:" + cfgFile.SHA256, Size: cfgFile.Size},
		Layers: make([]descriptor, 0, len(files))}
	blobs := map[string]File{cfgFile.SHA256: cfgFile}
	for _, f := range files {
		if err := CheckPath(f.Path, f.MediaType); err != nil {
			return fmt.Errorf("writing bundle: %w", err)
		}
		if err := checkOCIDigest(f.Path, f.MediaType, f.SHA256); err != nil {
			return fmt.Errorf("writing bundle: %w", err)
		}
		m.Layers = append(m.Layers, descriptor{MediaType: f.MediaType, Digest: "sha256:" + f.SHA256, Size: f.Size,
			Annotations: map[string]string{annotationTitle: f.Path}})
		blobs[f.SHA256] = f
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("writing bundle manifest: %w", err)
	}
	mf := BytesFile("", mediaTypeManifest, mb)
	blobs[mf.SHA256] = mf
	ib, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{{
		MediaType: mediaTypeManifest, ArtifactType: ArtifactType, Digest: "sha256:" + mf.SHA256, Size: mf.Size,
		Annotations: map[string]string{annotationRefName: refName}}}})
	if err != nil {
		return fmt.Errorf("writing bundle index: %w", err)
	}
	tw := tar.NewWriter(w)
	put := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: tarTime, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing bundle member %s: %w", name, err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			return fmt.Errorf("writing bundle member %s: %w", name, err)
		}
		return nil
	}
	if err := put("oci-layout", int64(len(ociLayout)), strings.NewReader(ociLayout)); err != nil {
		return err
	}
	if err := put("index.json", int64(len(ib)), bytes.NewReader(ib)); err != nil {
		return err
	}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	slices.Sort(digests)
	for _, d := range digests {
		f := blobs[d]
		rc, err := f.open()
		if err != nil {
			return fmt.Errorf("writing bundle: opening %s: %w", f.Path, err)
		}
		h := sha256.New()
		err = put("blobs/sha256/"+d, f.Size, io.TeeReader(rc, h))
		rc.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != d {
			return fmt.Errorf("writing bundle: %s changed while it was written (sha256 %s, expected %s)", f.Path, got, d)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finishing the bundle: %w", err)
	}
	return nil
}
