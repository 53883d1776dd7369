package mirror

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/tufrepo"
)

// Limits bound what reading a bundle may cost. Zero fields take the defaults.
type Limits struct {
	MaxMembers     int   // tar members, the layout files included
	MaxMemberBytes int64 // one member
	MaxTotalBytes  int64 // all members together
	MaxJSONBytes   int64 // index, manifest, config, one metadata file, the audit log
}

// DefaultLimits fit a registry-wide export of a large registry; sites lower them with
// the CLI's flags.
func DefaultLimits() Limits {
	return Limits{MaxMembers: 2_000_000, MaxMemberBytes: 8 << 30, MaxTotalBytes: 1 << 40, MaxJSONBytes: 512 << 20}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMembers <= 0 {
		l.MaxMembers = d.MaxMembers
	}
	if l.MaxMemberBytes <= 0 {
		l.MaxMemberBytes = d.MaxMemberBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxJSONBytes <= 0 {
		l.MaxJSONBytes = d.MaxJSONBytes
	}
	return l
}

var (
	blobNameRE     = regexp.MustCompile(`^blobs/sha256/([0-9a-f]{64})$`)
	versionedRE    = regexp.MustCompile(`^([1-9][0-9]{0,17})\.([a-z0-9_][a-z0-9._-]{0,127})\.json$`)
	targetFileRE   = regexp.MustCompile(`^([0-9a-f]{64})\.(.+)$`)
	errNotBundle   = "not a Cairn mirror bundle"
	bundleFixHints = "export it again with 'cairn mirror export'"
)

func malformed(format string, args ...any) error {
	return api.Errorf(api.CodeBadRequest, "%s (%s)", fmt.Sprintf(format, args...), bundleFixHints)
}

// MetadataName splits a metadata file name of a bundle: "<N>.<role>.json" gives (role, N);
// "timestamp.json" gives ("timestamp", 0).
func MetadataName(name string) (role string, version int64, err error) {
	if name == "timestamp.json" {
		return tufrepo.RoleTimestamp, 0, nil
	}
	m := versionedRE.FindStringSubmatch(name)
	if m == nil || strings.Contains(m[2], "..") {
		return "", 0, api.Errorf(api.CodeInvalidPath, "metadata file name %.80q is not <version>.<role>.json or timestamp.json", name)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return "", 0, api.Errorf(api.CodeInvalidPath, "metadata file name %.80q has a bad version", name)
	}
	if m[2] == tufrepo.RoleTimestamp {
		return "", 0, api.Errorf(api.CodeInvalidPath, "metadata file name %.80q: timestamp is only served as timestamp.json", name)
	}
	return m[2], v, nil
}

// TargetFile splits a target file's path in the mirror, "targets/<project>/<version>/
// <sha256>.<file>", into its target path and sha256, validating every component as
// cairnd's routes do.
func TargetFile(path string) (targetPath, sha string, err error) {
	parts := strings.Split(path, "/")
	if len(parts) != 4 || parts[0] != "targets" {
		return "", "", api.Errorf(api.CodeInvalidPath, "target file %.120q is not targets/<project>/<version>/<sha256>.<file>", path)
	}
	if err := tufrepo.ValidateProjectName(parts[1]); err != nil {
		return "", "", api.Wrap(api.CodeInvalidPath, err, "target file %.120q", path)
	}
	m := targetFileRE.FindStringSubmatch(parts[3])
	if m == nil {
		return "", "", api.Errorf(api.CodeInvalidPath, "target file %.120q is not named <sha256>.<file>", path)
	}
	tp := tufrepo.TargetPath(parts[1], parts[2], m[2])
	if _, _, err := tufrepo.SplitTargetPath(parts[1], tp); err != nil {
		return "", "", api.Wrap(api.CodeInvalidPath, err, "target file %.120q", path)
	}
	return tp, m[1], nil
}

var merkleProofRE = regexp.MustCompile(`^merkle/([1-9][0-9]{0,17})/([a-z0-9_][a-z0-9._-]{0,127})\.json$`)

// MerkleProofName splits the path of a Merkle proof in a mirror, "merkle/<timestamp
// version>/<role>.json".
func MerkleProofName(path string) (timestamp int64, role string, err error) {
	m := merkleProofRE.FindStringSubmatch(path)
	if m == nil || strings.Contains(m[2], "..") {
		return 0, "", api.Errorf(api.CodeInvalidPath, "Merkle proof %.120q is not merkle/<timestamp version>/<role>.json", path)
	}
	ts, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, "", api.Errorf(api.CodeInvalidPath, "Merkle proof %.120q has a bad timestamp version", path)
	}
	return ts, m[2], nil
}

var tlogEntryRE = regexp.MustCompile(`^tlog/([a-z0-9_][a-z0-9._-]{0,127})/([1-9][0-9]{0,17})\.json$`)

// TlogEntryName splits the path of a transparency-log entry in a bundle,
// "tlog/<role>/<version>.json".
func TlogEntryName(path string) (role string, version int64, err error) {
	m := tlogEntryRE.FindStringSubmatch(path)
	if m == nil || strings.Contains(m[1], "..") {
		return "", 0, api.Errorf(api.CodeInvalidPath, "transparency-log entry %.120q is not tlog/<role>/<version>.json", path)
	}
	v, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return "", 0, api.Errorf(api.CodeInvalidPath, "transparency-log entry %.120q has a bad version", path)
	}
	return m[1], v, nil
}

// CheckPath checks that path is where a file of mediaType belongs in a mirror.
func CheckPath(path, mediaType string) error {
	switch mediaType {
	case MediaTypeMetadata:
		name, ok := strings.CutPrefix(path, "metadata/")
		if !ok {
			return api.Errorf(api.CodeInvalidPath, "metadata file %.120q is not under metadata/", path)
		}
		_, _, err := MetadataName(name)
		return err
	case MediaTypeTarget:
		_, _, err := TargetFile(path)
		return err
	case MediaTypeMerkleProof:
		_, _, err := MerkleProofName(path)
		return err
	case MediaTypeTlogEntry:
		_, _, err := TlogEntryName(path)
		return err
	case MediaTypeAuditLog:
		if path != AuditLogPath {
			return api.Errorf(api.CodeInvalidPath, "the audit log is at %s, not %.120q", AuditLogPath, path)
		}
		return nil
	case MediaTypeOwnTarget, MediaTypeAttestation, MediaTypeAttestationRecord:
		return checkAttestPath(path, mediaType, "")
	case MediaTypeOCIManifest, MediaTypeOCIBlob, MediaTypeOCIRepository:
		_, kind, _, err := OCIPath(path)
		if err != nil {
			return err
		}
		if want := map[string]string{MediaTypeOCIManifest: "manifests", MediaTypeOCIBlob: "blobs", MediaTypeOCIRepository: "repository"}[mediaType]; kind != want {
			return api.Errorf(api.CodeInvalidPath, "OCI file %.120q of media type %s is not where that type belongs", path, mediaType)
		}
		return nil
	}
	return api.Errorf(api.CodeUnsupported, "file %.120q has media type %.80q, which this version of Cairn does not know: upgrade cairn, or export without it", path, mediaType)
}

// Read reads a bundle from r, writing its blobs into staging (an empty directory the
// caller owns and removes), each checked against its digest as it streams. It refuses,
// with a specific error and before returning anything: a truncated or non-tar stream, a
// member other than oci-layout, index.json, blobs/sha256/<hex> (and their directories),
// including any path traversal or link; a member twice; more members or bytes than lim
// allows; a blob whose bytes do not match its name; an index or manifest of another
// artifact type; a layer of an unknown media type or at a path its type does not allow;
// and a layer or config that is missing.
func Read(r io.Reader, staging string, lim Limits) (*Bundle, error) {
	lim = lim.withDefaults()
	tr := tar.NewReader(r)
	var (
		members  int
		total    int64
		layout   []byte
		indexRaw []byte
		blobs    = map[string]int64{}
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, malformed("the bundle is truncated or not a tar archive: %v", err)
		}
		members++
		if members > lim.MaxMembers {
			return nil, api.Errorf(api.CodeTooMany, "the bundle has more than %d members, the limit: raise it with --max-members if the bundle is genuine", lim.MaxMembers)
		}
		name := hdr.Name
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name == "blobs/" || name == "blobs/sha256/" || name == "blobs" || name == "blobs/sha256" {
				continue
			}
			return nil, malformed("the bundle has an unexpected directory %.120q", name)
		case tar.TypeReg:
		default:
			return nil, malformed("bundle member %.120q is not a regular file (type %q): links and devices are refused", name, hdr.Typeflag)
		}
		if hdr.Size < 0 || hdr.Size > lim.MaxMemberBytes {
			return nil, api.Errorf(api.CodeTooLarge, "bundle member %.120q is %d bytes, more than the %d allowed per member: raise --max-file-size if the bundle is genuine", name, hdr.Size, lim.MaxMemberBytes)
		}
		total += hdr.Size
		if total > lim.MaxTotalBytes {
			return nil, api.Errorf(api.CodeTooLarge, "the bundle holds more than %d bytes, the limit: raise --max-bundle-size if the bundle is genuine", lim.MaxTotalBytes)
		}
		switch {
		case name == "oci-layout" || name == "index.json":
			if layout != nil && name == "oci-layout" || indexRaw != nil && name == "index.json" {
				return nil, malformed("the bundle has %s twice", name)
			}
			if hdr.Size > lim.MaxJSONBytes {
				return nil, api.Errorf(api.CodeTooLarge, "bundle member %s is %d bytes, more than %d", name, hdr.Size, lim.MaxJSONBytes)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, malformed("the bundle is truncated in %s: %v", name, err)
			}
			if name == "oci-layout" {
				layout = b
			} else {
				indexRaw = b
			}
		default:
			m := blobNameRE.FindStringSubmatch(name)
			if m == nil {
				return nil, malformed("bundle member %.120q is not part of an OCI image layout (oci-layout, index.json, blobs/sha256/<hex>)", name)
			}
			if _, dup := blobs[m[1]]; dup {
				return nil, malformed("the bundle has blob %s twice", m[1])
			}
			if err := stageBlob(tr, staging, m[1], hdr.Size); err != nil {
				return nil, err
			}
			blobs[m[1]] = hdr.Size
		}
	}
	if layout == nil {
		return nil, malformed("%s: the tar has no oci-layout file", errNotBundle)
	}
	if err := strictjson.Check(layout, strictjson.FieldNames("imageLayoutVersion")); err != nil || !bytes.Contains(layout, []byte(`"imageLayoutVersion"`)) {
		return nil, malformed("%s: oci-layout is not an OCI image layout marker", errNotBundle)
	}
	if indexRaw == nil {
		return nil, malformed("%s: the tar has no index.json", errNotBundle)
	}
	var idx index
	if err := decodeStrict(indexRaw, &idx); err != nil {
		return nil, malformed("index.json does not parse: %v", err)
	}
	var mdesc *descriptor
	for i, d := range idx.Manifests {
		if d.ArtifactType == ArtifactType || d.Annotations[annotationRefName] == refName {
			if mdesc != nil {
				return nil, malformed("index.json names two Cairn mirror manifests")
			}
			mdesc = &idx.Manifests[i]
		}
	}
	if mdesc == nil {
		return nil, malformed("%s: index.json names no manifest of artifact type %s", errNotBundle, ArtifactType)
	}
	open := func(d descriptor, what string, max int64) ([]byte, error) {
		hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
		size, have := blobs[hexd]
		if !ok || !have {
			return nil, malformed("the %s (%.80s) is not in the bundle", what, d.Digest)
		}
		if size != d.Size {
			return nil, malformed("the %s is %d bytes, but its descriptor says %d", what, size, d.Size)
		}
		if size > max {
			return nil, api.Errorf(api.CodeTooLarge, "the %s is %d bytes, more than %d", what, size, max)
		}
		return os.ReadFile(filepath.Join(staging, hexd))
	}
	mraw, err := open(*mdesc, "manifest", lim.MaxJSONBytes)
	if err != nil {
		return nil, err
	}
	var man manifest
	if err := decodeStrict(mraw, &man); err != nil {
		return nil, malformed("the manifest does not parse: %v", err)
	}
	if man.ArtifactType != ArtifactType || man.Config.MediaType != MediaTypeConfig {
		return nil, malformed("%s: the manifest's artifact type is %.80q, config %.80q", errNotBundle, man.ArtifactType, man.Config.MediaType)
	}
	// Layers may share a blob (identical files in two releases), so the member bound does
	// not bound them: bound them here, before any is looked at.
	if len(man.Layers) > lim.MaxMembers {
		return nil, api.Errorf(api.CodeTooMany, "the manifest lists %d files, more than the %d allowed: raise --max-members if the bundle is genuine", len(man.Layers), lim.MaxMembers)
	}
	craw, err := open(man.Config, "config", 16<<20)
	if err != nil {
		return nil, err
	}
	b := &Bundle{}
	if err := decodeStrict(craw, &b.Info); err != nil {
		return nil, malformed("the bundle config does not parse: %v", err)
	}
	if b.Info.Format != Format {
		return nil, api.Errorf(api.CodeUnsupported, "the bundle's format is %.40q; this cairn reads %s", b.Info.Format, Format)
	}
	for _, l := range man.Layers {
		path := l.Annotations[annotationTitle]
		if err := CheckPath(path, l.MediaType); err != nil {
			return nil, err
		}
		hexd, ok := strings.CutPrefix(l.Digest, "sha256:")
		size, have := blobs[hexd]
		if !ok || !have {
			return nil, malformed("file %s (%.80s) is listed but its blob is not in the bundle", path, l.Digest)
		}
		if size != l.Size {
			return nil, malformed("file %s is %d bytes, but the manifest says %d", path, size, l.Size)
		}
		if err := checkOCIDigest(path, l.MediaType, hexd); err != nil {
			return nil, err
		}
		if l.MediaType == MediaTypeOCIManifest && size > MaxOCIManifest {
			return nil, api.Errorf(api.CodeTooLarge, "OCI manifest %s is %d bytes, more than the %d a manifest may have", path, size, MaxOCIManifest)
		}
		if l.MediaType != MediaTypeTarget && l.MediaType != MediaTypeOCIBlob && size > lim.MaxJSONBytes {
			return nil, api.Errorf(api.CodeTooLarge, "file %s is %d bytes, more than the %d allowed for metadata", path, size, lim.MaxJSONBytes)
		}
		blob := filepath.Join(staging, hexd)
		b.Files = append(b.Files, File{Path: path, MediaType: l.MediaType, Size: size, SHA256: hexd,
			open: func() (io.ReadCloser, error) { return os.Open(blob) }})
	}
	slices.SortFunc(b.Files, func(x, y File) int { return strings.Compare(x.Path, y.Path) })
	for i := 1; i < len(b.Files); i++ {
		if b.Files[i].Path == b.Files[i-1].Path {
			return nil, malformed("the manifest lists %s twice", b.Files[i].Path)
		}
	}
	return b, nil
}

// checkOCIDigest checks that an OCI manifest or blob sits at the path of its own digest,
// so that what a mirror serves under a digest is what has that digest.
func checkOCIDigest(path, mediaType, sha256Hex string) error {
	if err := checkAttestPath(path, mediaType, sha256Hex); err != nil {
		return err
	}
	if mediaType != MediaTypeOCIManifest && mediaType != MediaTypeOCIBlob {
		return nil
	}
	if _, _, d, _ := OCIPath(path); d != "sha256:"+sha256Hex {
		return api.Errorf(api.CodeDigestMismatch, "OCI file %.160q holds bytes of sha256 %s: the bundle was altered after export", path, sha256Hex)
	}
	return nil
}

// stageBlob copies one blob into staging, checking its digest.
func stageBlob(r io.Reader, staging, hexd string, size int64) (err error) {
	f, err := os.OpenFile(filepath.Join(staging, hexd), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("staging bundle blob %s: %w", hexd, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("staging bundle blob %s: %w", hexd, cerr)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return malformed("the bundle is truncated in blob %s: %v", hexd, err)
	}
	if n != size {
		return malformed("the bundle is truncated in blob %s: %d of %d bytes", hexd, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexd {
		return api.Errorf(api.CodeDigestMismatch, "bundle blob %s has sha256 %s: the bundle was altered or damaged after export", hexd, got)
	}
	return nil
}

// decodeStrict decodes one of the bundle's own JSON documents, refusing one that parsers
// could read differently (internal/strictjson) or that has fields its type does not know.
func decodeStrict(data []byte, v any) error {
	if err := strictjson.Check(data, strictjson.FieldsOf(v)); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
