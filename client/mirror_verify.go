package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// DefaultMaxStaleness is how old a bundle may be (its export time against the verifier's
// clock) unless the site sets another bound: SECURITY.md "Air-gapped mirrors".
const DefaultMaxStaleness = 30 * 24 * time.Hour

// maxBundleClockSkew is how far in the future a bundle's export time may lie (clocks of
// the exporting and the air-gapped machine differ).
const maxBundleClockSkew = 10 * time.Minute

// maxBundleMetadata bounds one metadata file read from a bundle or a mirror.
const maxBundleMetadata = 512 << 20

// BundleVerifyOptions tune VerifyBundle.
type BundleVerifyOptions struct {
	// Now is the verifier's clock (nil: time.Now).
	Now func() time.Time
	// MaxStaleness bounds how long before Now the bundle may have been exported; 0 means
	// DefaultMaxStaleness.
	MaxStaleness time.Duration
	// LogKey, if set, verifies the checkpoints of the bundle's transparency-log entries;
	// without it their statements, signatures and inclusion proofs are checked, but not
	// that the log signed the tree head.
	LogKey *tlog.LogKey
	// Base is the mirror the bundle is applied to, for an import: metadata and release
	// files the bundle does not carry (an incremental bundle's unchanged projects) are
	// taken from it. Nil for a bundle checked on its own.
	Base *mirror.Dir
}

// BundleVerification is what VerifyBundle proved.
type BundleVerification struct {
	Server           string    `json:"server"`
	ExportedAt       time.Time `json:"exported_at"`
	AsOf             time.Time `json:"expiry_evaluated_as_of"`
	PinnedRoot       int64     `json:"pinned_root_version"`
	RootVersion      int64     `json:"root_version"`
	TimestampVersion int64     `json:"timestamp_version"`
	SnapshotVersion  int64     `json:"snapshot_version"`
	Since            int64     `json:"since,omitempty"`
	// Projects are the project roles verified (from the bundle and, on import, the mirror).
	Projects []string `json:"projects"`
	// Roles counts the metadata files of the bundle verified through TUF.
	Roles int `json:"metadata_files"`
	// Files counts the bundle's release files whose length and sha256 match the signed
	// project roles; FromBase those the mirror already held (length checked, hashed when
	// they were imported); Missing those an incremental bundle checked on its own leaves
	// to the earlier import it applies to.
	Files    int `json:"files"`
	FromBase int `json:"files_from_mirror,omitempty"`
	Missing  int `json:"files_left_to_base,omitempty"`
	// AuditEntries counts the audit-log entries whose hashes recomputed and that match
	// the bundle's metadata byte for byte.
	AuditEntries int `json:"audit_entries"`
	// MerkleProofs counts the Merkle snapshot proofs verified against the timestamp.
	MerkleProofs int `json:"merkle_proofs,omitempty"`
	// TlogEntries counts the transparency-log entries verified; TlogCheckpoints says
	// whether their checkpoints were checked with the log's key (--log-key).
	TlogEntries     int  `json:"tlog_entries"`
	TlogCheckpoints bool `json:"tlog_checkpoints_verified"`
	// OCIRepositories and OCIManifests count the OCI repositories and manifests checked
	// (every blob and child they reference present, release tags as TUF implies them).
	OCIRepositories int `json:"oci_repositories"`
	OCIManifests    int `json:"oci_manifests"`
	// Attestations counts the attestation bundles verified (sha256 as the signed index
	// lists it, and package attest against the TUF-delivered Sigstore trusted root).
	Attestations int `json:"attestations"`

	newestRoot []byte
}

// bundleFile is a metadata file of a bundle or of the mirror it applies to.
type bundleSource struct {
	b    *mirror.Bundle
	base *mirror.Dir
}

// metadata returns the bytes of metadata/<name> from the bundle, else the base; fromBundle
// says which. A file in neither satisfies errors.Is(err, fs.ErrNotExist).
func (s bundleSource) metadata(name string) (raw []byte, fromBundle bool, err error) {
	if f, ok := s.b.File("metadata/" + name); ok {
		raw, err = f.ReadAll(maxBundleMetadata)
		return raw, true, err
	}
	if s.base == nil {
		return nil, false, fs.ErrNotExist
	}
	raw, err = s.base.ReadFile("metadata/"+name, maxBundleMetadata)
	return raw, false, err
}

// bundleError names the bundle file that failed and maps err to its exit code.
func bundleError(err error, role, file, detail string) error {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return err
	}
	code := ExitFailure
	if c, ok := tufExitCode(err); ok {
		code = c
	} else if ae := (*api.Error)(nil); errors.As(err, &ae) {
		code = CodeExit(ae.Code)
	}
	return &VerifyError{Code: code, Role: role, Detail: fmt.Sprintf("bundle file %s: %s", file, detail), Err: err}
}

// VerifyBundle checks a bundle with no network, as a TUF client would check the same
// files from a server (go-tuf's trusted metadata set does every signature, threshold,
// version, expiry, length and hash check of metadata): the root chain from anchor (the
// pinned root, or the mirror's newest root on import), one timestamp, the snapshot it
// names, targets, every delegated role in the bundle by its delegator, every release file
// against the project role that lists it, and every audit-log entry's hash. Expiry is
// evaluated as of the bundle's export time, which must lie within opt.MaxStaleness of
// now (SECURITY.md "Air-gapped mirrors"). The first failure is returned as a
// *VerifyError naming the bundle file.
func VerifyBundle(b *mirror.Bundle, anchor []byte, opt BundleVerifyOptions) (*BundleVerification, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	maxStale := opt.MaxStaleness
	if maxStale <= 0 {
		maxStale = DefaultMaxStaleness
	}
	info := b.Info
	t := now()
	if info.ExportedAt.IsZero() || info.ExportedAt.After(t.Add(maxBundleClockSkew)) {
		return nil, &VerifyError{Code: ExitPolicy, Detail: fmt.Sprintf("the bundle says it was exported at %s, after this machine's clock (%s): check both clocks", info.ExportedAt.Format(time.RFC3339), t.UTC().Format(time.RFC3339))}
	}
	if age := t.Sub(info.ExportedAt); age > maxStale {
		return nil, &VerifyError{Code: ExitPolicy, Detail: fmt.Sprintf("the bundle was exported at %s, %s ago, longer than the maximum staleness of %s: bring a newer bundle, or raise --max-staleness if the site accepts older releases", info.ExportedAt.Format(time.RFC3339), age.Round(time.Minute), maxStale)}
	}
	src := bundleSource{b: b, base: opt.Base}
	res := &BundleVerification{Server: info.Server, ExportedAt: info.ExportedAt, AsOf: info.ExportedAt, Since: info.Since}

	// Every metadata file must parse one way only before go-tuf reads it.
	roots := map[int64]mirror.File{}
	var newest int64
	for _, f := range b.Files {
		if f.MediaType != mirror.MediaTypeMetadata {
			continue
		}
		role, v, err := mirror.MetadataName(f.Path[len("metadata/"):])
		if err != nil {
			return nil, bundleError(err, "", f.Path, "bad name")
		}
		raw, err := f.ReadAll(maxBundleMetadata)
		if err != nil {
			return nil, bundleError(err, role, f.Path, "unreadable")
		}
		if err := tufrepo.CheckJSON(raw, f.Path); err != nil {
			return nil, &VerifyError{Code: ExitMalformed, Role: role, Detail: api.ProblemFor(err).Detail, Err: err}
		}
		if role == tufrepo.RoleRoot {
			roots[v] = f
			newest = max(newest, v)
		}
	}

	// The root chain: complete from 1, through the anchor byte for byte, then verified
	// onwards from the anchor (TUF §5.3).
	am, err := metadata.Root().FromBytes(anchor)
	if err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the pinned root does not parse as TUF root metadata", Err: err}
	}
	pinned := am.Signed.Version
	res.PinnedRoot = pinned
	if newest == 0 {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the bundle holds no root metadata: it is not a complete export"}
	}
	for v := int64(1); v <= newest; v++ {
		if _, ok := roots[v]; !ok {
			return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("the bundle's root chain has a gap: metadata/%d.root.json is missing (it holds roots up to %d)", v, newest)}
		}
	}
	if pinned > newest {
		return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("the trusted root is version %d but the bundle's newest root is %d: the bundle is older than what is trusted here (a rollback), or comes from another repository", pinned, newest)}
	}
	pf := roots[pinned]
	praw, err := pf.ReadAll(maxBundleMetadata)
	if err != nil {
		return nil, bundleError(err, tufrepo.RoleRoot, pf.Path, "unreadable")
	}
	if !bytes.Equal(praw, anchor) {
		return nil, &VerifyError{Code: ExitKeyNotTrusted, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("the bundle's root version %d (sha256 %s) is not the trusted root version %d (sha256 %s): the bundle comes from another repository, or its root chain does not extend the one trusted here", pinned, shortSum(praw), pinned, shortSum(anchor))}
	}
	if pinned > 1 {
		// The part of the chain before the anchor: each root by its predecessor, ending at
		// the anchor's bytes. It proves the bundle's history is one chain, not the anchor.
		first, _ := roots[1].ReadAll(maxBundleMetadata)
		early, err := trustedmetadata.New(first)
		if err != nil {
			return nil, bundleError(err, tufrepo.RoleRoot, roots[1].Path, err.Error())
		}
		for v := int64(2); v <= pinned; v++ {
			raw, _ := roots[v].ReadAll(maxBundleMetadata)
			if _, err := early.UpdateRoot(raw); err != nil {
				return nil, bundleError(err, tufrepo.RoleRoot, roots[v].Path, "does not chain from the root before it: "+err.Error())
			}
		}
	}
	trusted, err := trustedmetadata.New(anchor)
	if err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the trusted root does not load", Err: err}
	}
	trusted.RefTime = info.ExportedAt
	res.newestRoot = anchor
	for v := pinned + 1; v <= newest; v++ {
		raw, _ := roots[v].ReadAll(maxBundleMetadata)
		if _, err := trusted.UpdateRoot(raw); err != nil {
			return nil, bundleError(err, tufrepo.RoleRoot, roots[v].Path, err.Error())
		}
		res.newestRoot = raw
	}
	res.RootVersion = newest

	// timestamp → snapshot → targets.
	tsf, ok := b.File("metadata/timestamp.json")
	if !ok {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTimestamp, Detail: "the bundle holds no metadata/timestamp.json"}
	}
	tsRaw, _ := tsf.ReadAll(maxBundleMetadata)
	if _, err := trusted.UpdateTimestamp(tsRaw); err != nil {
		return nil, bundleError(err, tufrepo.RoleTimestamp, tsf.Path, err.Error())
	}
	res.TimestampVersion = trusted.Timestamp.Signed.Version
	sm := trusted.Timestamp.Signed.Meta[tufrepo.MetaName(tufrepo.RoleSnapshot)]
	if sm == nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTimestamp, Detail: "the timestamp names no snapshot"}
	}
	verifiedFiles := map[string]bool{tsf.Path: true}
	loaded := map[string][]byte{} // role → the verified bytes, for the Merkle leaves
	for v := int64(1); v <= newest; v++ {
		verifiedFiles[roots[v].Path] = true
	}
	load := func(role string, version int64, update func([]byte) error) (bool, error) {
		name := tufrepo.VersionedName(role, version)
		raw, fromBundle, err := src.metadata(name)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, bundleError(err, role, "metadata/"+name, "unreadable")
		}
		if !fromBundle {
			if err := tufrepo.CheckJSON(raw, "mirror file metadata/"+name); err != nil {
				return false, &VerifyError{Code: ExitMalformed, Role: role, Detail: api.ProblemFor(err).Detail, Err: err}
			}
		}
		if err := update(raw); err != nil {
			return false, bundleError(err, role, "metadata/"+name, err.Error())
		}
		loaded[role] = raw
		if fromBundle {
			verifiedFiles["metadata/"+name] = true
			res.Roles++
		}
		return true, nil
	}
	ok, err = load(tufrepo.RoleSnapshot, sm.Version, func(raw []byte) error { _, err := trusted.UpdateSnapshot(raw, false); return err })
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleSnapshot, Detail: fmt.Sprintf("the bundle holds no metadata/%s, which the timestamp names", tufrepo.VersionedName(tufrepo.RoleSnapshot, sm.Version))}
	}
	snap := trusted.Snapshot.Signed
	res.SnapshotVersion = snap.Version
	tm := snap.Meta[tufrepo.MetaName(tufrepo.RoleTargets)]
	if tm == nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleSnapshot, Detail: "the snapshot does not list targets"}
	}
	ok, err = load(tufrepo.RoleTargets, tm.Version, func(raw []byte) error { _, err := trusted.UpdateTargets(raw); return err })
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTargets, Detail: fmt.Sprintf("the bundle holds no metadata/%s, which the snapshot names", tufrepo.VersionedName(tufrepo.RoleTargets, tm.Version))}
	}

	// Delegated roles, in the order a client walks them (pre-order, delegations in
	// listed order): each is verified by the first delegator that reaches it, with the
	// version the snapshot lists. Roles in neither the bundle nor the mirror (projects
	// not exported) are skipped: a client asking for them gets 404.
	var walk func(parent string, depth int) error
	walk = func(parent string, depth int) error {
		md := trusted.Targets[parent]
		if md == nil || md.Signed.Delegations == nil || depth > 32 {
			return nil
		}
		for _, d := range md.Signed.Delegations.Roles {
			if _, done := trusted.Targets[d.Name]; done {
				continue
			}
			m := snap.Meta[tufrepo.MetaName(d.Name)]
			if m == nil {
				continue
			}
			name, delegator := d.Name, parent
			ok, err := load(name, m.Version, func(raw []byte) error {
				_, err := trusted.UpdateDelegatedTargets(raw, name, delegator)
				return err
			})
			if err != nil {
				return err
			}
			if ok {
				if err := walk(name, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(tufrepo.RoleTargets, 0); err != nil {
		return nil, err
	}
	for _, f := range b.Files {
		if f.MediaType == mirror.MediaTypeMetadata && !verifiedFiles[f.Path] {
			role, v, _ := mirror.MetadataName(f.Path[len("metadata/"):])
			want := "the snapshot does not list it"
			if m := snap.Meta[tufrepo.MetaName(role)]; m != nil {
				want = fmt.Sprintf("the snapshot lists version %d", m.Version)
				if m.Version == v {
					want = "no verified role delegates to it"
				}
			}
			return nil, &VerifyError{Code: ExitPolicy, Role: role, Detail: fmt.Sprintf("bundle file %s is not part of the verified metadata: %s", f.Path, want)}
		}
	}

	// Release files, against the verified project roles.
	matched := map[string]bool{}
	releases := map[string]bool{} // sha256 of the release files the bundle carries
	var projects []string
	for name, md := range trusted.Targets {
		if tufrepo.IsReservedRole(name) {
			continue
		}
		if _, _, shard := tufrepo.ParseShardRole(name); shard || tufrepo.IsAttestationShardRole(name) {
			continue
		}
		projects = append(projects, name)
		for tp, tf := range md.Signed.Targets {
			version, file, err := tufrepo.SplitTargetPath(name, tp)
			if err != nil {
				return nil, &VerifyError{Code: ExitMalformed, Role: name, Target: tp, Detail: "the signed role lists a path Cairn does not serve", Err: err}
			}
			sum := hex.EncodeToString(tf.Hashes["sha256"])
			p := "targets/" + name + "/" + version + "/" + sum + "." + file
			if f, ok := b.File(p); ok {
				// The bundle reader hashed the blob and it matched its name, which is the
				// signed sha256; the length is checked here. Small files are also
				// checked by go-tuf itself.
				if f.Size != tf.Length || f.SHA256 != sum {
					return nil, &VerifyError{Code: ExitHashMismatch, Role: name, Target: tp, Detail: fmt.Sprintf("bundle file %s is %d bytes with sha256 %s; the signed role lists %d bytes", p, f.Size, f.SHA256, tf.Length)}
				}
				if f.Size <= 64<<20 {
					data, err := f.ReadAll(64 << 20)
					if err != nil {
						return nil, bundleError(err, name, p, "unreadable")
					}
					if err := tf.VerifyLengthHashes(data); err != nil {
						return nil, &VerifyError{Code: ExitHashMismatch, Role: name, Target: tp, Detail: fmt.Sprintf("bundle file %s does not match the signed role", p), Err: err}
					}
				}
				matched[p] = true
				releases[sum] = true
				res.Files++
				continue
			}
			if opt.Base != nil {
				if n, ok := opt.Base.FileSize(p); ok && n == tf.Length {
					res.FromBase++
					continue
				}
			}
			if info.Since > 0 && opt.Base == nil {
				res.Missing++
				continue
			}
			return nil, &VerifyError{Code: ExitPolicy, Role: name, Target: tp, Detail: fmt.Sprintf("release file %s, which the signed role lists, is in neither the bundle nor the mirror: the bundle is incomplete (a file was dropped), or an incremental bundle is applied to the wrong mirror", p)}
		}
	}
	for _, f := range b.Files {
		if f.MediaType == mirror.MediaTypeTarget && !matched[f.Path] {
			tp, _, _ := mirror.TargetFile(f.Path)
			return nil, &VerifyError{Code: ExitPolicy, Target: tp, Detail: fmt.Sprintf("bundle file %s is listed by no verified project role with that sha256: it was added or altered after export", f.Path)}
		}
	}
	slices.Sort(projects)
	res.Projects = projects
	if !info.All && info.Since == 0 {
		for _, p := range info.Projects {
			if _, ok := trusted.Targets[p]; !ok {
				return nil, &VerifyError{Code: ExitPolicy, Role: p, Detail: fmt.Sprintf("the bundle says it holds project %s, but its verified role is not in it (dropped after export, or not delegated)", p)}
			}
		}
	}
	if info.SnapshotVersion != res.SnapshotVersion || info.TimestampVersion != res.TimestampVersion {
		return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleTimestamp, Detail: fmt.Sprintf("the bundle's config names timestamp %d and snapshot %d, but its signed metadata is timestamp %d and snapshot %d", info.TimestampVersion, info.SnapshotVersion, res.TimestampVersion, res.SnapshotVersion)}
	}

	// Merkle proofs: each for this timestamp, leading to the root it signed, with the leaf
	// of the role's verified bytes.
	if n, err := verifyBundleProofs(b, trusted.Timestamp, snap, loaded); err != nil {
		return nil, err
	} else {
		res.MerkleProofs = n
	}

	// Transparency-log entries: each names exactly a metadata file of the bundle, is signed
	// by the online key the verified metadata delegates the role to, and is in the log.
	if n, err := verifyBundleTlog(b, trusted, opt.LogKey); err != nil {
		return nil, err
	} else {
		res.TlogEntries, res.TlogCheckpoints = n, opt.LogKey != nil
	}

	// OCI artifacts: complete, by digest, and release tags bound to the verified roles.
	if nr, nm, err := verifyBundleOCI(b, trusted); err != nil {
		return nil, err
	} else {
		res.OCIRepositories, res.OCIManifests = nr, nm
	}

	// Attestations of the bundle's release files.
	if n, err := verifyBundleAttestations(b, trusted, opt.Base, releases); err != nil {
		return nil, err
	} else {
		res.Attestations = n
	}

	// The audit log: every entry's hash recomputes, and every entry is one of the
	// bundle's metadata files byte for byte; every metadata file of the bundle has one.
	if n, err := verifyBundleLog(b); err != nil {
		return nil, err
	} else {
		res.AuditEntries = n
	}
	return res, nil
}

func verifyBundleLog(b *mirror.Bundle) (int, error) {
	f, ok := b.File(mirror.AuditLogPath)
	if !ok {
		return 0, &VerifyError{Code: ExitPolicy, Role: "audit log", Detail: "the bundle holds no " + mirror.AuditLogPath + ": export it again with a current cairn"}
	}
	raw, err := f.ReadAll(maxBundleMetadata)
	if err != nil {
		return 0, bundleError(err, "audit log", f.Path, "unreadable")
	}
	var entries []api.LogEntry
	if err := tufrepo.CheckJSONFields(raw, f.Path, strictjsonFieldsOfLog(), api.CodeMalformedJSON); err != nil {
		return 0, &VerifyError{Code: ExitMalformed, Role: "audit log", Detail: api.ProblemFor(err).Detail, Err: err}
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return 0, &VerifyError{Code: ExitMalformed, Role: "audit log", Detail: "bundle file " + f.Path + " is not a list of audit-log entries", Err: err}
	}
	type key struct {
		role    string
		version int64
	}
	files := map[key]mirror.File{}
	for _, mf := range b.Files {
		if mf.MediaType != mirror.MediaTypeMetadata {
			continue
		}
		role, v, _ := mirror.MetadataName(mf.Path[len("metadata/"):])
		if role == tufrepo.RoleTimestamp {
			raw, _ := mf.ReadAll(maxBundleMetadata)
			ts, err := metadata.Timestamp().FromBytes(raw)
			if err != nil {
				return 0, bundleError(err, role, mf.Path, "does not parse")
			}
			v = ts.Signed.Version
		}
		files[key{role, v}] = mf
	}
	logged := map[key]bool{}
	var prevSeq int64
	var prevHash string
	for i, e := range entries {
		if i > 0 && e.Seq <= prevSeq {
			return 0, &VerifyError{Code: ExitMalformed, Role: "audit log", Detail: fmt.Sprintf("entry %d follows entry %d: the entries are not in order", e.Seq, prevSeq)}
		}
		prev, err := hex.DecodeString(e.PrevHash)
		if err != nil {
			return 0, &VerifyError{Code: ExitMalformed, Role: "audit log", Detail: fmt.Sprintf("entry %d has a malformed prev_hash", e.Seq)}
		}
		if got := hex.EncodeToString(tufrepo.AuditHash(prev, e)); got != e.Hash {
			return 0, &VerifyError{Code: ExitHashMismatch, Role: "audit log", Detail: fmt.Sprintf("entry %d's hash does not recompute (%s, entry says %s): the entry was altered", e.Seq, got, e.Hash)}
		}
		if i > 0 && e.Seq == prevSeq+1 && e.PrevHash != prevHash {
			return 0, &VerifyError{Code: ExitHashMismatch, Role: "audit log", Detail: fmt.Sprintf("entry %d does not chain from entry %d", e.Seq, prevSeq)}
		}
		prevSeq, prevHash = e.Seq, e.Hash
		mf, ok := files[key{e.Role, e.Version}]
		if !ok {
			return 0, &VerifyError{Code: ExitPolicy, Role: "audit log", Detail: fmt.Sprintf("entry %d records %s version %d, which the bundle does not hold", e.Seq, e.Role, e.Version)}
		}
		if mf.Size != e.Length || mf.SHA256 != e.SHA256 {
			return 0, &VerifyError{Code: ExitHashMismatch, Role: e.Role, Detail: fmt.Sprintf("bundle file %s is %d bytes with sha256 %s, but audit-log entry %d records %d bytes with sha256 %s: the file was replaced", mf.Path, mf.Size, shortHex(mf.SHA256), e.Seq, e.Length, shortHex(e.SHA256))}
		}
		logged[key{e.Role, e.Version}] = true
	}
	for k, mf := range files {
		if !logged[k] {
			return 0, &VerifyError{Code: ExitPolicy, Role: k.role, Detail: fmt.Sprintf("bundle file %s has no audit-log entry in the bundle: the server's log does not record it, or the entry was dropped", mf.Path)}
		}
	}
	return len(entries), nil
}

func shortSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:16]
}

func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// verifyBundleProofs checks the bundle's Merkle proofs (mirror.MediaTypeMerkleProof) with
// the client's own proof check (merkleView.checkProof): for the bundle's timestamp, to the
// root it signed, and for the leaf of the role version the snapshot lists, with the
// length and sha256 of its verified bytes when the bundle or the mirror holds them.
func verifyBundleProofs(b *mirror.Bundle, ts *metadata.Metadata[metadata.TimestampType], snap metadata.SnapshotType, loaded map[string][]byte) (int, error) {
	field, hasTree := ts.Signed.UnrecognizedFields[merkle.FieldName]
	var mv *merkleView
	n := 0
	for _, f := range b.Files {
		if f.MediaType != mirror.MediaTypeMerkleProof {
			continue
		}
		tsv, role, err := mirror.MerkleProofName(f.Path)
		if err != nil {
			return n, bundleError(err, role, f.Path, "bad name")
		}
		if !hasTree {
			return n, &VerifyError{Code: ExitPolicy, Role: role, Detail: fmt.Sprintf("bundle file %s is a Merkle proof, but the timestamp carries no Merkle snapshot", f.Path)}
		}
		if tsv != ts.Signed.Version {
			return n, &VerifyError{Code: ExitPolicy, Role: role, Detail: fmt.Sprintf("bundle file %s is a proof for timestamp %d, not the bundle's timestamp %d", f.Path, tsv, ts.Signed.Version)}
		}
		if mv == nil {
			root, err := merkle.ParseField(field)
			if err != nil {
				return n, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTimestamp, Detail: fmt.Sprintf("timestamp version %d has a malformed %s field", ts.Signed.Version, merkle.FieldName), Err: err}
			}
			mv = &merkleView{ts: ts.Signed.Version, root: root}
		}
		raw, err := f.ReadAll(maxProofBytes)
		if err != nil {
			return n, bundleError(err, role, f.Path, "unreadable")
		}
		leaf, err := mv.checkProof(raw, role, "bundle file "+f.Path)
		if err != nil {
			return n, err
		}
		m := snap.Meta[tufrepo.MetaName(role)]
		if m == nil || m.Version != leaf.Version {
			return n, &VerifyError{Code: ExitHashMismatch, Role: role, Detail: fmt.Sprintf("bundle file %s proves version %d of %s, not the version the snapshot lists", f.Path, leaf.Version, role)}
		}
		if rb, ok := loaded[role]; ok {
			sum := sha256.Sum256(rb)
			if int64(len(rb)) != leaf.Length || sum != leaf.SHA256 {
				return n, &VerifyError{Code: ExitHashMismatch, Role: role, Detail: fmt.Sprintf("bundle file %s proves a leaf whose length or sha256 is not that of the verified %s metadata", f.Path, role)}
			}
		}
		n++
	}
	return n, nil
}

// verifyBundleTlog checks the bundle's transparency-log entries with package tlog: the
// statement names the bundle's bytes of that role version, the envelope and the log entry
// are signed by a key the verified root (timestamp, snapshot) or delegator
// (recently-claimed nodes) trusts for the role, the inclusion proof leads to the entry's
// tree head, and, with logKey, the log signed that tree head.
func verifyBundleTlog(b *mirror.Bundle, trusted *trustedmetadata.TrustedMetadata, logKey *tlog.LogKey) (int, error) {
	n := 0
	for _, f := range b.Files {
		if f.MediaType != mirror.MediaTypeTlogEntry {
			continue
		}
		role, version, err := mirror.TlogEntryName(f.Path)
		if err != nil {
			return n, bundleError(err, "", f.Path, "bad name")
		}
		raw, err := f.ReadAll(maxBundleMetadata)
		if err != nil {
			return n, bundleError(err, role, f.Path, "unreadable")
		}
		if err := tufrepo.CheckJSONFields(raw, f.Path, strictjson.FieldsOf(api.TransparencyLogEntry{}), api.CodeMalformedJSON); err != nil {
			return n, &VerifyError{Code: ExitMalformed, Role: role, Detail: api.ProblemFor(err).Detail, Err: err}
		}
		var e api.TransparencyLogEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return n, &VerifyError{Code: ExitMalformed, Role: role, Detail: "bundle file " + f.Path + " is not a transparency-log entry", Err: err}
		}
		if e.Role != role || e.Version != version {
			return n, &VerifyError{Code: ExitPolicy, Role: role, Detail: fmt.Sprintf("bundle file %s holds the entry of %s version %d", f.Path, e.Role, e.Version)}
		}
		name := "metadata/" + tufrepo.VersionedName(role, version)
		if role == tufrepo.RoleTimestamp {
			name = "metadata/timestamp.json"
			if trusted.Timestamp.Signed.Version != version {
				return n, &VerifyError{Code: ExitPolicy, Role: role, Detail: fmt.Sprintf("bundle file %s is the entry of timestamp %d, not of the bundle's timestamp %d", f.Path, version, trusted.Timestamp.Signed.Version)}
			}
		}
		mf, ok := b.File(name)
		if !ok {
			return n, &VerifyError{Code: ExitPolicy, Role: role, Detail: fmt.Sprintf("bundle file %s is the entry of %s version %d, which the bundle does not hold", f.Path, role, version)}
		}
		key := onlineKey(trusted, role, e.KeyID)
		if key == nil {
			return n, &VerifyError{Code: ExitKeyNotTrusted, Role: role, Detail: fmt.Sprintf("bundle file %s: key %s, which signed the logged statement, is not a key the verified metadata trusts for %s", f.Path, short(e.KeyID), role)}
		}
		m := tlog.Metadata{Role: role, Version: version, Length: mf.Size, SHA256: mf.SHA256, KeyID: e.KeyID}
		if logKey != nil {
			err = tlog.VerifyEntry(e, m, key, *logKey)
		} else {
			err = verifyTlogEntryNoCheckpoint(e, m, key)
		}
		if err != nil {
			return n, &VerifyError{Code: ExitHashMismatch, Role: role, Detail: fmt.Sprintf("bundle file %s, the transparency-log entry of %s version %d, does not verify against the bundle's bytes and keys", f.Path, role, version), Err: err}
		}
		n++
	}
	return n, nil
}

// verifyTlogEntryNoCheckpoint is tlog.VerifyEntry without the log key's check of the
// checkpoint.
func verifyTlogEntryNoCheckpoint(e api.TransparencyLogEntry, m tlog.Metadata, key *metadata.Key) error {
	st, err := tlog.ParseStatement(e.Envelope)
	if err != nil {
		return err
	}
	if err := tlog.CheckStatement(st, m); err != nil {
		return err
	}
	if err := tlog.VerifySignature(e.Envelope, key); err != nil {
		return err
	}
	return tlog.VerifyRekorEntry(e.Rekor, e.Envelope, key, nil)
}

// onlineKey is keyID if the verified metadata trusts it for role: the root for timestamp
// and snapshot, the delegating role for a recently-claimed node.
func onlineKey(trusted *trustedmetadata.TrustedMetadata, role, keyID string) *metadata.Key {
	if role == tufrepo.RoleTimestamp || role == tufrepo.RoleSnapshot {
		r := trusted.Root.Signed.Roles[role]
		if r == nil || !slices.Contains(r.KeyIDs, keyID) {
			return nil
		}
		return trusted.Root.Signed.Keys[keyID]
	}
	for _, md := range trusted.Targets {
		if md.Signed.Delegations == nil {
			continue
		}
		for _, d := range md.Signed.Delegations.Roles {
			if d.Name == role && slices.Contains(d.KeyIDs, keyID) {
				return md.Signed.Delegations.Keys[keyID]
			}
		}
	}
	return nil
}
