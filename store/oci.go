package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/jackc/pgx/v5"
)

// OCI registry metadata (issue #4). The oci package speaks HTTP; this file keeps what it
// needs in PostgreSQL. Blob bytes are in blobstore.

// OCIManifest is a stored manifest.
type OCIManifest struct {
	Repo         string
	Digest       string
	MediaType    string
	ArtifactType string
	Subject      string
	Annotations  map[string]string
	Raw          []byte
	Release      bool
}

// OCIManifestPut is a manifest to store, with what it references.
type OCIManifestPut struct {
	OCIManifest
	// Blobs must already be linked into the repository (config, layers).
	Blobs []string
	// Manifests must already be stored in the repository (index entries).
	Manifests []string
	// Tags to point at this manifest.
	Tags []string
}

func ensureRepo(ctx context.Context, tx pgx.Tx, repo string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO oci_repositories (name) VALUES ($1) ON CONFLICT DO NOTHING`, repo); err != nil {
		return fmt.Errorf("creating repository %s: %w", repo, err)
	}
	return nil
}

// OCIPutManifest stores a manifest and its tags in one transaction: every referenced blob
// must be linked into the repository and every referenced manifest stored in it, and no
// immutable tag may move. On any refusal nothing is written.
func (db *DB) OCIPutManifest(ctx context.Context, m OCIManifestPut) error {
	return db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := ensureRepo(ctx, tx, m.Repo); err != nil {
			return err
		}
		if len(m.Blobs) > 0 {
			var have []string
			rows, err := tx.Query(ctx, `SELECT b.digest FROM oci_repo_blobs r JOIN oci_blobs b USING (digest) WHERE r.repo = $1 AND r.digest = ANY($2) FOR SHARE OF r, b`, m.Repo, m.Blobs)
			if err != nil {
				return fmt.Errorf("checking the manifest's blobs: %w", err)
			}
			if have, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return fmt.Errorf("checking the manifest's blobs: %w", err)
			}
			for _, d := range m.Blobs {
				if !slices.Contains(have, d) {
					return api.OCIErrorf(api.CodeOCIManifestBlobUnknown, map[string]string{"digest": d}, "the manifest references blob %s, which is not in repository %s: push the blob (or mount it) before the manifest", d, m.Repo)
				}
			}
		}
		if len(m.Manifests) > 0 {
			rows, err := tx.Query(ctx, `SELECT digest FROM oci_manifests WHERE repo = $1 AND digest = ANY($2) FOR SHARE`, m.Repo, m.Manifests)
			if err != nil {
				return fmt.Errorf("checking the index's manifests: %w", err)
			}
			have, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("checking the index's manifests: %w", err)
			}
			for _, d := range m.Manifests {
				if !slices.Contains(have, d) {
					return api.OCIErrorf(api.CodeOCIManifestBlobUnknown, map[string]string{"digest": d}, "the index references manifest %s, which is not in repository %s: push it before the index", d, m.Repo)
				}
			}
		}
		var ann []byte
		if len(m.Annotations) > 0 {
			ann, _ = json.Marshal(m.Annotations)
		}
		var subject *string
		if m.Subject != "" {
			subject = &m.Subject
		}
		_, err := tx.Exec(ctx, `INSERT INTO oci_manifests (repo, digest, media_type, artifact_type, subject, annotations, raw, release)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (repo, digest) DO UPDATE SET release = oci_manifests.release OR EXCLUDED.release`,
			m.Repo, m.Digest, m.MediaType, m.ArtifactType, subject, ann, m.Raw, m.Release)
		if err != nil {
			return fmt.Errorf("storing manifest %s: %w", m.Digest, err)
		}
		refs := append(slices.Clone(m.Blobs), m.Manifests...)
		if len(refs) > 0 {
			_, err = tx.Exec(ctx, `INSERT INTO oci_manifest_refs (repo, manifest, ref) SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING`, m.Repo, m.Digest, refs)
			if err != nil {
				return fmt.Errorf("recording the manifest's references: %w", err)
			}
		}
		for _, tag := range m.Tags {
			var cur string
			var immutable bool
			err := tx.QueryRow(ctx, `SELECT digest, immutable FROM oci_tags WHERE repo = $1 AND tag = $2 FOR UPDATE`, m.Repo, tag).Scan(&cur, &immutable)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("reading tag %s: %w", tag, err)
			}
			// Immutable tags are release tags that an earlier version stored (releases are
			// now derived and never stored: oci/releases.go); they still never move.
			if immutable && cur != m.Digest {
				return api.OCIErrorf(api.CodeOCIReleaseImmutable, map[string]string{"tag": tag, "digest": cur}, "tag %s:%s is a published release and cannot be moved (it points at %s): push under another tag", m.Repo, tag, cur)
			}
			_, err = tx.Exec(ctx, `INSERT INTO oci_tags (repo, tag, digest, immutable) VALUES ($1,$2,$3,false)
				ON CONFLICT (repo, tag) DO UPDATE SET digest = EXCLUDED.digest, updated_at = now()`,
				m.Repo, tag, m.Digest)
			if err != nil {
				return fmt.Errorf("setting tag %s: %w", tag, err)
			}
		}
		return nil
	})
}

// OCIGetManifest returns a manifest by digest, or by tag if ref is not a digest. It
// returns nil if there is none.
func (db *DB) OCIGetManifest(ctx context.Context, repo, ref string, byDigest bool) (*OCIManifest, error) {
	q := `SELECT m.repo, m.digest, m.media_type, m.artifact_type, coalesce(m.subject, ''), m.raw, m.release FROM oci_manifests m WHERE m.repo = $1 AND m.digest = $2`
	if !byDigest {
		q = `SELECT m.repo, m.digest, m.media_type, m.artifact_type, coalesce(m.subject, ''), m.raw, m.release FROM oci_tags t JOIN oci_manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = $1 AND t.tag = $2`
	}
	var m OCIManifest
	err := db.Pool.QueryRow(ctx, q, repo, ref).Scan(&m.Repo, &m.Digest, &m.MediaType, &m.ArtifactType, &m.Subject, &m.Raw, &m.Release)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s@%s: %w", repo, ref, err)
	}
	return &m, nil
}

// OCIDeleteManifest deletes a manifest (and the tags that point at it). Release manifests
// are refused. It reports whether there was one.
func (db *DB) OCIDeleteManifest(ctx context.Context, repo, digest string) (bool, error) {
	found := false
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var release bool
		err := tx.QueryRow(ctx, `SELECT release FROM oci_manifests WHERE repo = $1 AND digest = $2 FOR UPDATE`, repo, digest).Scan(&release)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading manifest %s@%s: %w", repo, digest, err)
		}
		found = true
		if release {
			return api.OCIErrorf(api.CodeOCIReleaseImmutable, map[string]string{"digest": digest}, "manifest %s@%s is a published release: releases are immutable (yank it with `cairn yank` instead)", repo, digest)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM oci_manifests WHERE repo = $1 AND digest = $2`, repo, digest); err != nil {
			return fmt.Errorf("deleting manifest %s@%s: %w", repo, digest, err)
		}
		return nil
	})
	return found, err
}

// OCIDeleteTag deletes a tag; release tags are refused. It reports whether there was one.
func (db *DB) OCIDeleteTag(ctx context.Context, repo, tag string) (bool, error) {
	found := false
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var immutable bool
		err := tx.QueryRow(ctx, `SELECT immutable FROM oci_tags WHERE repo = $1 AND tag = $2 FOR UPDATE`, repo, tag).Scan(&immutable)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tag %s:%s: %w", repo, tag, err)
		}
		found = true
		if immutable {
			return api.OCIErrorf(api.CodeOCIReleaseImmutable, map[string]string{"tag": tag}, "tag %s:%s is a published release and cannot be deleted", repo, tag)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM oci_tags WHERE repo = $1 AND tag = $2`, repo, tag); err != nil {
			return fmt.Errorf("deleting tag %s:%s: %w", repo, tag, err)
		}
		return nil
	})
	return found, err
}

// OCIRepoExists reports whether a repository has ever been pushed to.
func (db *DB) OCIRepoExists(ctx context.Context, repo string) (bool, error) {
	var ok bool
	err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM oci_repositories WHERE name = $1)`, repo).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("reading repository %s: %w", repo, err)
	}
	return ok, nil
}

// OCIListTags returns up to n tags after last, in lexical (byte) order, and whether more follow.
func (db *DB) OCIListTags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	rows, err := db.Pool.Query(ctx, `SELECT tag FROM oci_tags WHERE repo = $1 AND tag COLLATE "C" > $2 ORDER BY tag COLLATE "C" LIMIT $3`, repo, last, n+1)
	if err != nil {
		return nil, false, fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	tags, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, false, fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	more := len(tags) > n
	if more {
		tags = tags[:n]
	}
	return tags, more, nil
}

// OCIReferrer is one manifest whose subject is a given digest.
type OCIReferrer struct {
	Digest       string
	MediaType    string
	ArtifactType string
	Size         int64
	Annotations  map[string]string
}

// OCIReferrers lists the manifests of repo whose subject is digest, optionally only those
// of one artifact type, oldest first.
func (db *DB) OCIReferrers(ctx context.Context, repo, digest, artifactType string) ([]OCIReferrer, error) {
	rows, err := db.Pool.Query(ctx, `SELECT digest, media_type, artifact_type, length(raw), annotations FROM oci_manifests
		WHERE repo = $1 AND subject = $2 AND ($3 = '' OR artifact_type = $3) ORDER BY created_at, digest`, repo, digest, artifactType)
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s@%s: %w", repo, digest, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (OCIReferrer, error) {
		var x OCIReferrer
		var ann []byte
		if err := r.Scan(&x.Digest, &x.MediaType, &x.ArtifactType, &x.Size, &ann); err != nil {
			return x, err
		}
		if len(ann) > 0 {
			if err := json.Unmarshal(ann, &x.Annotations); err != nil {
				return x, fmt.Errorf("decoding annotations of %s: %w", x.Digest, err)
			}
		}
		return x, nil
	})
}

// OCIBlobInRepo returns the size of a blob linked into repo, and whether it is.
func (db *DB) OCIBlobInRepo(ctx context.Context, repo, digest string) (int64, bool, error) {
	var size int64
	err := db.Pool.QueryRow(ctx, `SELECT b.size FROM oci_repo_blobs r JOIN oci_blobs b USING (digest) WHERE r.repo = $1 AND r.digest = $2`, repo, digest).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading blob %s in %s: %w", digest, repo, err)
	}
	return size, true, nil
}

// OCILinkBlob records a blob whose file has just been stored (or already was) and links
// it into repo. Callers store the file between the row lock (lockBlob) and the commit, so a
// concurrent garbage collection never removes a file that a link points at.
func (db *DB) OCILinkBlob(ctx context.Context, repo, digest string, size int64, store func() error) error {
	// Not InTx: store moves a file, which a retry could not do again.
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return OCILinkBlobTx(ctx, tx, repo, digest, size, store)
	})
}

// OCIMountBlob links a blob that the registry already holds into repo: from one
// repository, or (from == "") from any. exists checks that the file is really there. It
// returns the size, or ok false if the blob cannot be mounted.
func (db *DB) OCIMountBlob(ctx context.Context, repo, from, digest string, exists func() bool) (int64, bool, error) {
	var size int64
	ok := false
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		q := `SELECT b.size FROM oci_blobs b WHERE b.digest = $1 AND EXISTS (SELECT 1 FROM oci_repo_blobs r WHERE r.digest = b.digest AND ($2 = '' OR r.repo = $2)) FOR UPDATE OF b`
		err := tx.QueryRow(ctx, q, digest, from).Scan(&size)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("looking up blob %s to mount: %w", digest, err)
		}
		if exists != nil && !exists() {
			return nil
		}
		if err := ensureRepo(ctx, tx, repo); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE oci_blobs SET last_used = now() WHERE digest = $1`, digest); err != nil {
			return fmt.Errorf("mounting blob %s: %w", digest, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO oci_repo_blobs (repo, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING`, repo, digest); err != nil {
			return fmt.Errorf("mounting blob %s into %s: %w", digest, repo, err)
		}
		ok = true
		return nil
	})
	return size, ok, err
}

// OCIUnlinkBlob removes a blob from a repository. A blob that a manifest of the repository
// still references is refused (the manifest would break); so is a release's. It reports
// whether the blob was linked.
func (db *DB) OCIUnlinkBlob(ctx context.Context, repo, digest string) (bool, error) {
	found := false
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM oci_repo_blobs WHERE repo = $1 AND digest = $2`, repo, digest)
		if err != nil {
			return fmt.Errorf("unlinking blob %s from %s: %w", digest, repo, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		found = true
		var manifest string
		err = tx.QueryRow(ctx, `SELECT manifest FROM oci_manifest_refs WHERE repo = $1 AND ref = $2 LIMIT 1`, repo, digest).Scan(&manifest)
		if err == nil {
			return api.OCIErrorf(api.CodeOCIBlobReferenced, map[string]string{"digest": digest, "manifest": manifest}, "blob %s is referenced by manifest %s in %s: delete the manifest first", digest, manifest, repo)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("checking references to blob %s: %w", digest, err)
		}
		return nil
	})
	return found, err
}

// OCIUpload is an upload session.
type OCIUpload struct {
	ID        string
	Repo      string
	Size      int64
	UpdatedAt time.Time
}

// OCICreateUpload starts an upload session in repo; create makes its file.
func (db *DB) OCICreateUpload(ctx context.Context, repo string, create func(id string) error) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	if err := create(id); err != nil {
		return "", err
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO oci_uploads (id, repo) VALUES ($1, $2)`, id, repo); err != nil {
		return "", fmt.Errorf("recording upload session: %w", err)
	}
	return id, nil
}

// OCIGetUpload returns an upload session of repo that has not expired, or nil.
func (db *DB) OCIGetUpload(ctx context.Context, repo, id string, ttl time.Duration) (*OCIUpload, error) {
	var u OCIUpload
	err := db.Pool.QueryRow(ctx, `SELECT id, repo, size, updated_at FROM oci_uploads WHERE id = $1 AND repo = $2 AND updated_at > now() - $3::interval`, id, repo, ttl.String()).
		Scan(&u.ID, &u.Repo, &u.Size, &u.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading upload session: %w", err)
	}
	return &u, nil
}

// OCISetUploadSize records that a session now holds size bytes, if it still held prev
// (the caller holds the session's file lock; the condition catches a writer that did
// not). It reports whether the session was updated.
func (db *DB) OCISetUploadSize(ctx context.Context, id string, prev, size int64) (bool, error) {
	tag, err := db.Pool.Exec(ctx, `UPDATE oci_uploads SET size = $3, updated_at = now() WHERE id = $1 AND size = $2`, id, prev, size)
	if err != nil {
		return false, fmt.Errorf("updating upload session: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// OCIFinishUpload completes a session that held prev bytes and now holds size: in one
// transaction it records the blob, runs store (which checks the digest and moves the file
// into place), links the blob into repo and ends the session. It reports false, and
// changes nothing, if the session is gone or was changed meanwhile.
func (db *DB) OCIFinishUpload(ctx context.Context, repo, id string, prev int64, digest string, size int64, store func() error) (bool, error) {
	found := false
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM oci_uploads WHERE id = $1 AND repo = $2 AND size = $3`, id, repo, prev)
		if err != nil {
			return fmt.Errorf("ending upload session: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		found = true
		return OCILinkBlobTx(ctx, tx, repo, digest, size, store)
	})
	return found && err == nil, err
}

// OCILinkBlobTx records a blob and links it into repo inside tx; store puts the file in
// place between the two, holding the blob's row lock (see OCILinkBlob).
func OCILinkBlobTx(ctx context.Context, tx pgx.Tx, repo, digest string, size int64, store func() error) error {
	if store != nil {
		// store may copy the blob to S3 while this transaction waits: longer than the
		// idle-in-transaction limit meant for frozen replicas (Sessions). What this
		// transaction holds (the blob's lock) blocks only pushes and collection of the
		// same blob.
		if _, err := tx.Exec(ctx, `SET LOCAL idle_in_transaction_session_timeout = '15min'`); err != nil {
			return fmt.Errorf("setting the blob transaction's time limit: %w", err)
		}
	}
	// Garbage collection removes a blob's file under this lock, exclusively, once the
	// blob's row is gone: a push holding it shared stores its file and row undisturbed.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1, hashtext($2))`, blobLockSpace, digest); err != nil {
		return fmt.Errorf("locking blob %s: %w", digest, err)
	}
	if err := ensureRepo(ctx, tx, repo); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO oci_blobs (digest, size) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET last_used = now()`, digest, size)
	if err != nil {
		return fmt.Errorf("recording blob %s: %w", digest, err)
	}
	if store != nil {
		if err := store(); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO oci_repo_blobs (repo, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING`, repo, digest)
	if err != nil {
		return fmt.Errorf("linking blob %s into %s: %w", digest, repo, err)
	}
	return nil
}

// OCIDeleteUpload cancels an upload session; it reports whether there was one.
func (db *DB) OCIDeleteUpload(ctx context.Context, repo, id string) (bool, error) {
	tag, err := db.Pool.Exec(ctx, `DELETE FROM oci_uploads WHERE id = $1 AND repo = $2`, id, repo)
	if err != nil {
		return false, fmt.Errorf("cancelling upload session: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// OCITokenKey returns the key that signs registry tokens, creating it on first use.
func (db *DB) OCITokenKey(ctx context.Context) ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO oci_token_key (id, key) VALUES (1, $1) ON CONFLICT DO NOTHING`, k); err != nil {
		return nil, fmt.Errorf("creating the registry token key: %w", err)
	}
	var key []byte
	err := db.Pool.QueryRow(ctx, `SELECT key FROM oci_token_key WHERE id = 1`).Scan(&key)
	if err != nil {
		return nil, fmt.Errorf("reading the registry token key: %w", err)
	}
	return key, nil
}

// TokenByID returns a token record that is not revoked, or nil (registry tokens name the
// Cairn token they were issued for, so revocation still takes effect at once).
func (db *DB) TokenByID(ctx context.Context, id string) (*Token, error) {
	var t Token
	err := db.Pool.QueryRow(ctx, `SELECT id, name, admin, can_create, projects, created_at, revoked_at FROM tokens WHERE id = $1 AND revoked_at IS NULL`, id).
		Scan(&t.ID, &t.Name, &t.Admin, &t.CanCreate, &t.Projects, &t.CreatedAt, &t.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up token: %w", err)
	}
	return &t, nil
}

// PublishedReleaseFile is a file of a published release.
type PublishedReleaseFile struct {
	Version     string
	Filename    string
	Length      int64
	SHA256      string // hex
	RoleVersion int64  // the project role version that added the file
}

// PublishedReleaseFiles lists the files of project's published releases, by version and
// file name; only those of the versions whose OCI tag is tag ("+" becomes "_" in tags),
// unless tag is "".
func (db *DB) PublishedReleaseFiles(ctx context.Context, project, tag string) ([]PublishedReleaseFile, error) {
	rows, err := db.Pool.Query(ctx, `SELECT f.version, f.filename, f.length, f.sha256, f.role_version FROM release_files f JOIN projects p ON p.name = f.project
		WHERE f.project = $1 AND f.role_version <= p.published_version AND ($2 = '' OR replace(f.version, '+', '_') = $2)
		ORDER BY f.version, f.filename`, project, tag)
	if err != nil {
		return nil, fmt.Errorf("listing the published files of %s: %w", project, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PublishedReleaseFile, error) {
		var f PublishedReleaseFile
		var sum []byte
		err := r.Scan(&f.Version, &f.Filename, &f.Length, &sum, &f.RoleVersion)
		f.SHA256 = hex.EncodeToString(sum)
		return f, err
	})
}

// PublishedReleaseFileSize reports whether a published release of project has a file with
// this sha256 (hex), and its length. It only reads.
func (db *DB) PublishedReleaseFileSize(ctx context.Context, project, sha256Hex string) (int64, bool, error) {
	sum, err := hex.DecodeString(sha256Hex)
	if err != nil || len(sum) != 32 {
		return 0, false, nil
	}
	var n int64
	err = db.Pool.QueryRow(ctx, `SELECT f.length FROM release_files f JOIN projects p ON p.name = f.project
		WHERE f.project = $1 AND f.sha256 = $2 AND f.role_version <= p.published_version LIMIT 1`, project, sum).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("looking up release file sha256:%s of %s: %w", sha256Hex, project, err)
	}
	return n, true, nil
}

// OCIGCOptions configures a garbage collection of the registry.
type OCIGCOptions struct {
	// Grace protects what is younger: a blob pushed or mounted, a link made, an upload
	// file written less than Grace ago is kept, so a push in flight is never broken.
	Grace time.Duration
	// UploadTTL is the lifetime of an idle upload session.
	UploadTTL time.Duration
	// DryRun reports what would go and changes nothing.
	DryRun bool
	// Now is the collection's clock (time.Now in cairnd; tests drive it). Ages are measured
	// from the one instant read at the start, for records and files alike.
	Now func() time.Time
}

// OCIGCReport says what a garbage collection removed (or would remove).
type OCIGCReport struct {
	Sessions    int      `json:"sessions"`
	UploadFiles int      `json:"upload_files"`
	Links       int      `json:"links"`
	Blobs       []string `json:"blobs"`
	Bytes       int64    `json:"bytes"`
	KeptFiles   int      `json:"kept_release_files"` // OCI records dropped, file kept: a release file
	// TempFiles and TempBytes count the files a killed writer left in <blob-dir>/tmp;
	// TempInUse the ones old enough that a live writer still holds (never removed).
	TempFiles int   `json:"temp_files"`
	TempBytes int64 `json:"temp_bytes"`
	TempInUse int   `json:"temp_in_use"`
	DryRun    bool  `json:"dry_run"`
}

// blobLockSpace is the first key of the advisory locks that order blob stores against
// blob file removal (the second is the digest's hash).
const blobLockSpace = 0x0C1B

// errGCBusy is returned when another garbage collection holds the lock.
var errGCBusy = errors.New("another OCI garbage collection is running")

// OCIGarbageCollect removes expired upload sessions, upload files no session owns,
// repository links to blobs that no manifest of the repository references, and blobs
// no repository links — all older than the grace period. The records go in one
// transaction holding an advisory lock (one collection at a time) and each blob's row
// lock (SKIP LOCKED; pushes and mounts lock the row too, so they either keep the blob or
// wait and record it again); the files go after, each under the blob's advisory lock.
// Files that are also release files are never removed.
func (db *DB) OCIGarbageCollect(ctx context.Context, b *blobstore.Store, o OCIGCOptions) (OCIGCReport, error) {
	rep := OCIGCReport{DryRun: o.DryRun, Blobs: []string{}}
	if o.Now == nil {
		return rep, errors.New("OCI garbage collection: no clock (OCIGCOptions.Now)")
	}
	// The limits are instants of the clock, not PostgreSQL's now(): a collection at a
	// chosen time sees exactly what is older than grace then.
	now := o.Now()
	expired, young := now.Add(-o.UploadTTL), now.Add(-o.Grace)
	var removeFiles []string
	var removeUploads []string
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('cairn-oci-gc'))`).Scan(&locked); err != nil {
			return fmt.Errorf("taking the garbage collection lock: %w", err)
		}
		if !locked {
			return errGCBusy
		}
		rows, err := tx.Query(ctx, `DELETE FROM oci_uploads WHERE updated_at < $1 RETURNING id`, expired)
		if err != nil {
			return fmt.Errorf("removing expired upload sessions: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("removing expired upload sessions: %w", err)
		}
		rep.Sessions = len(ids)
		removeUploads = append(removeUploads, ids...)
		// Upload files whose session row is gone (a crash between the two).
		files, err := b.Uploads.Files()
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id FROM oci_uploads`)
		if err != nil {
			return fmt.Errorf("listing upload sessions: %w", err)
		}
		live, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("listing upload sessions: %w", err)
		}
		for id, mtime := range files {
			if !slices.Contains(live, id) && !slices.Contains(ids, id) && now.Sub(mtime) > o.Grace {
				removeUploads = append(removeUploads, id)
				rep.UploadFiles++
			}
		}
		// Links to blobs that no manifest of their repository references. A manifest push
		// holds a share lock on the links it needs, so locked links are skipped, and each
		// one is checked again (a new statement sees manifests committed since) as it goes.
		rows, err = tx.Query(ctx, `SELECT repo, digest FROM oci_repo_blobs l WHERE l.created_at < $1
			AND NOT EXISTS (SELECT 1 FROM oci_manifest_refs m WHERE m.repo = l.repo AND m.ref = l.digest)
			ORDER BY repo, digest FOR UPDATE SKIP LOCKED`, young)
		if err != nil {
			return fmt.Errorf("finding unreferenced blob links: %w", err)
		}
		links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var l [2]string
			return l, r.Scan(&l[0], &l[1])
		})
		if err != nil {
			return fmt.Errorf("finding unreferenced blob links: %w", err)
		}
		for _, l := range links {
			tag, err := tx.Exec(ctx, `DELETE FROM oci_repo_blobs l WHERE repo = $1 AND digest = $2
				AND NOT EXISTS (SELECT 1 FROM oci_manifest_refs m WHERE m.repo = l.repo AND m.ref = l.digest)`, l[0], l[1])
			if err != nil {
				return fmt.Errorf("removing the link of %s in %s: %w", l[1], l[0], err)
			}
			rep.Links += int(tag.RowsAffected())
		}
		// Blobs no repository links.
		rows, err = tx.Query(ctx, `SELECT b.digest, b.size,
				EXISTS (SELECT 1 FROM blobs r WHERE b.digest = 'sha256:' || encode(r.sha256, 'hex'))
			FROM oci_blobs b WHERE b.last_used < $1
			AND NOT EXISTS (SELECT 1 FROM oci_repo_blobs l WHERE l.digest = b.digest)
			ORDER BY b.digest FOR UPDATE OF b SKIP LOCKED`, young)
		if err != nil {
			return fmt.Errorf("finding unreferenced blobs: %w", err)
		}
		type cand struct {
			digest  string
			size    int64
			release bool
		}
		cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cand, error) {
			var c cand
			return c, r.Scan(&c.digest, &c.size, &c.release)
		})
		if err != nil {
			return fmt.Errorf("finding unreferenced blobs: %w", err)
		}
		for _, c := range cands {
			// A file written within the grace period is in use by a push that has not
			// recorded it yet (a release file on its way into "blobs", say): keep it.
			if fi, err := b.Content.Stat(ctx, c.digest); err == nil && now.Sub(fi.ModTime) < o.Grace {
				continue
			}
			// Checked again now that the row is locked: a push that linked it just before
			// is visible to this new statement; one that links it after waits for the lock.
			tag, err := tx.Exec(ctx, `DELETE FROM oci_blobs b WHERE digest = $1 AND NOT EXISTS (SELECT 1 FROM oci_repo_blobs l WHERE l.digest = b.digest)`, c.digest)
			if err != nil {
				return fmt.Errorf("removing blob record %s: %w", c.digest, err)
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			if c.release {
				rep.KeptFiles++
				continue
			}
			rep.Blobs = append(rep.Blobs, c.digest)
			rep.Bytes += c.size
			removeFiles = append(removeFiles, c.digest)
		}
		if o.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return rep, err
	}
	if !o.DryRun {
		// Files go after the rows are committed, each under the blob's lock, and only if
		// no push has recorded the blob again meanwhile (a push holds the lock while it
		// stores the file and the row), so a linked blob never loses its file, even if
		// this collection fails half-way.
		for _, d := range removeFiles {
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, blobLockSpace, d); err != nil {
					return fmt.Errorf("locking blob %s: %w", d, err)
				}
				var back bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE digest = $1)`, d).Scan(&back); err != nil {
					return fmt.Errorf("checking blob %s: %w", d, err)
				}
				if back {
					return nil
				}
				return b.Content.Delete(ctx, d)
			})
			if err != nil {
				return rep, err
			}
		}
		for _, id := range removeUploads {
			if _, err := b.Uploads.TryRemove(id); err != nil {
				return rep, err
			}
		}
	}
	left, err := b.Uploads.RemoveLeftovers(o.Grace, now, o.DryRun)
	rep.UploadFiles += left
	if err != nil {
		return rep, err
	}
	tmp, err := b.Temp.RemoveAbandoned(o.Grace, now, o.DryRun)
	rep.TempFiles, rep.TempBytes, rep.TempInUse = tmp.Files, tmp.Bytes, tmp.Live
	if err != nil {
		return rep, fmt.Errorf("collecting abandoned temporary files: %w", err)
	}
	return rep, nil
}

var errDryRun = errors.New("dry run")
