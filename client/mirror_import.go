package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ImportOptions tune ImportBundle.
type ImportOptions struct {
	// Root is the trust anchor of an empty mirror (the root the site pinned). A mirror
	// that holds a root trusts its own newest root, verified at the earlier import, and
	// Root may then be nil.
	Root         []byte
	Now          func() time.Time
	MaxStaleness time.Duration
	// LogKey verifies the checkpoints of the bundle's transparency-log entries.
	LogKey *tlog.LogKey
}

// ImportResult is what an import did.
type ImportResult struct {
	*BundleVerification
	// PreviousSnapshot and PreviousTimestamp are what the mirror held before (0: empty).
	PreviousSnapshot  int64 `json:"previous_snapshot_version"`
	PreviousTimestamp int64 `json:"previous_timestamp_version"`
	// Written counts the files written; 0 when the mirror already held this bundle.
	Written int `json:"files_written"`
}

// ImportBundle verifies b against the mirror directory d and, only if everything holds,
// writes it there (mirror.Dir.Apply: new files first, timestamp.json last). It refuses,
// changing nothing: a bundle that does not verify from the mirror's trusted root (or
// opt.Root for an empty mirror), so also a root chain that does not extend the mirror's;
// a timestamp, snapshot or any role version older than the mirror's (rollback); the same
// timestamp version with other bytes; an incremental bundle whose base the mirror does
// not hold; and any file whose name the mirror holds with other bytes.
func ImportBundle(b *mirror.Bundle, d *mirror.Dir, opt ImportOptions) (*ImportResult, error) {
	unlock, err := d.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	anchor, err := d.ReadFile("metadata/root.json", maxBundleMetadata)
	empty := errors.Is(err, fs.ErrNotExist)
	switch {
	case empty && opt.Root == nil:
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("the mirror %s is empty: give the root to trust for the first import with --root (the root.json the registry's operators published)", d.Root())}
	case empty:
		anchor = opt.Root
	case err != nil:
		return nil, fmt.Errorf("reading the mirror's root: %w", err)
	}
	res := &ImportResult{}
	var heldTS []byte
	var heldSnap *metadata.Metadata[metadata.SnapshotType]
	if !empty {
		heldTS, err = d.ReadFile("metadata/timestamp.json", maxBundleMetadata)
		if err != nil {
			return nil, fmt.Errorf("reading the mirror's timestamp: %w", err)
		}
		ts, err := metadata.Timestamp().FromBytes(heldTS)
		if err != nil {
			return nil, fmt.Errorf("reading the mirror's timestamp: %w", err)
		}
		res.PreviousTimestamp = ts.Signed.Version
		if sm := ts.Signed.Meta[tufrepo.MetaName(tufrepo.RoleSnapshot)]; sm != nil {
			res.PreviousSnapshot = sm.Version
			raw, err := d.ReadFile("metadata/"+tufrepo.VersionedName(tufrepo.RoleSnapshot, sm.Version), maxBundleMetadata)
			if err != nil {
				return nil, fmt.Errorf("reading the mirror's snapshot: %w", err)
			}
			if heldSnap, err = metadata.Snapshot().FromBytes(raw); err != nil {
				return nil, fmt.Errorf("reading the mirror's snapshot: %w", err)
			}
		}
	}
	if s := b.Info.Since; s > 0 && res.PreviousSnapshot < s {
		held := "is empty"
		if !empty {
			held = fmt.Sprintf("holds snapshot %d", res.PreviousSnapshot)
		}
		return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleSnapshot, Detail: fmt.Sprintf("the bundle is incremental since snapshot %d, but the mirror %s: import a full bundle (or the one of snapshot %d) first", s, held, s)}
	}
	var base *mirror.Dir
	if !empty {
		base = d
	}
	v, err := VerifyBundle(b, anchor, BundleVerifyOptions{Now: opt.Now, MaxStaleness: opt.MaxStaleness, Base: base, LogKey: opt.LogKey})
	if err != nil {
		return nil, err
	}
	res.BundleVerification = v
	if !empty {
		if v.TimestampVersion < res.PreviousTimestamp || v.SnapshotVersion < res.PreviousSnapshot {
			return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleTimestamp, Detail: fmt.Sprintf("rollback: the bundle holds timestamp %d and snapshot %d, older than the mirror's timestamp %d and snapshot %d; bring a newer bundle", v.TimestampVersion, v.SnapshotVersion, res.PreviousTimestamp, res.PreviousSnapshot)}
		}
		tsf, _ := b.File("metadata/timestamp.json")
		raw, _ := tsf.ReadAll(maxBundleMetadata)
		if v.TimestampVersion == res.PreviousTimestamp {
			if !bytes.Equal(raw, heldTS) {
				return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleTimestamp, Detail: fmt.Sprintf("the bundle's timestamp version %d differs from the mirror's timestamp of the same version: the server signed two timestamps with one version", v.TimestampVersion)}
			}
			return res, nil // already imported
		}
		// No role may go back (TUF §5.5.5), so that a bundle cannot undo a yank.
		if heldSnap != nil {
			sf, _ := b.File("metadata/" + tufrepo.VersionedName(tufrepo.RoleSnapshot, v.SnapshotVersion))
			sraw, err := sf.ReadAll(maxBundleMetadata)
			if err != nil {
				sraw, err = d.ReadFile("metadata/"+tufrepo.VersionedName(tufrepo.RoleSnapshot, v.SnapshotVersion), maxBundleMetadata)
			}
			if err != nil {
				return nil, fmt.Errorf("reading the bundle's snapshot: %w", err)
			}
			ns, err := metadata.Snapshot().FromBytes(sraw)
			if err != nil {
				return nil, fmt.Errorf("reading the bundle's snapshot: %w", err)
			}
			for name, old := range heldSnap.Signed.Meta {
				nm := ns.Signed.Meta[name]
				if nm == nil || nm.Version < old.Version {
					now := int64(0)
					if nm != nil {
						now = nm.Version
					}
					return nil, &VerifyError{Code: ExitPolicy, Role: name, Detail: fmt.Sprintf("rollback: the bundle's snapshot lists %s at version %d, the mirror's at %d", name, now, old.Version)}
				}
			}
		}
		// Published names are immutable: the mirror must not hold other bytes under any.
		for _, f := range b.Files {
			if f.Path == "metadata/timestamp.json" || f.Path == mirror.AuditLogPath || f.MediaType == mirror.MediaTypeOCIRepository {
				// The timestamp moves on; an OCI repository record is the repository's
				// state at export (tags move) and replaces the mirror's.
				continue
			}
			_, sum, ok, err := d.FileSHA256(f.Path)
			if err != nil {
				return nil, err
			}
			if ok && sum != f.SHA256 {
				return nil, &VerifyError{Code: ExitHashMismatch, Detail: fmt.Sprintf("the mirror holds other bytes under %s (sha256 %s, the bundle's %s): the bundle comes from a repository that changed a published file", f.Path, shortHex(sum), shortHex(f.SHA256))}
			}
		}
	}
	n, err := d.Apply(b, v.newestRoot)
	res.Written = n
	if err != nil {
		return res, fmt.Errorf("writing the verified bundle into %s (the mirror still serves its previous timestamp): %w", d.Root(), err)
	}
	return res, nil
}

// BundleAsOf reads the export time of the bundle a mirror serves (mirror/bundle.json, next
// to metadata/ and targets/) and checks it against the site's staleness bound: it must
// lie within maxStaleness before now (0: DefaultMaxStaleness) and not in the future. The
// file is not signed; SECURITY.md "Air-gapped mirrors" says what that bound still gives.
// SetAsOf then makes the Repo evaluate expiry at that time.
func (r *Repo) BundleAsOf(ctx context.Context, now time.Time, maxStaleness time.Duration) (time.Time, error) {
	if maxStaleness <= 0 {
		maxStaleness = DefaultMaxStaleness
	}
	u := r.cfg.Server + "/" + mirror.InfoPath
	raw, err := r.fetch.get(ctx, u, 64<<10)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the mirror's bundle time from %s (is %s a mirror? --as-of-bundle is only for mirrors): %w", u, r.cfg.Server, err)
	}
	var in mirror.Info
	// The export time sets the clock every expiry is checked against: one reading only.
	err = strictjson.Check(raw, strictjson.FieldsOf(in))
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil || in.ExportedAt.IsZero() {
		return time.Time{}, &VerifyError{Code: ExitMalformed, Detail: fmt.Sprintf("%s does not name the bundle's export time", u), Err: err}
	}
	if in.ExportedAt.After(now.Add(maxBundleClockSkew)) {
		return time.Time{}, &VerifyError{Code: ExitPolicy, Detail: fmt.Sprintf("the mirror's bundle was exported at %s, after this machine's clock (%s): check both clocks", in.ExportedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if age := now.Sub(in.ExportedAt); age > maxStaleness {
		return time.Time{}, &VerifyError{Code: ExitPolicy, Detail: fmt.Sprintf("the mirror's bundle was exported at %s, %s ago, longer than the maximum staleness of %s: the mirror needs a newer bundle", in.ExportedAt.Format(time.RFC3339), age.Round(time.Minute), maxStaleness)}
	}
	return in.ExportedAt, nil
}

// SetAsOf sets RepoConfig.AsOf for the following calls.
func (r *Repo) SetAsOf(t time.Time) { r.cfg.AsOf = t }
