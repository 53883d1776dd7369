package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// NewAttestation is a verified bundle to store (attest.Verify made it).
type NewAttestation struct {
	api.Attestation
	Bundle            []byte
	SignatureSHA256   string // hex
	TrustedRootSHA256 string // hex: the trusted root it verified against
}

// MaxAttestationsPerFile bounds how many attestations one file may collect: anyone with a
// token may attach one, so the list a client downloads and verifies must stay bounded.
const MaxAttestationsPerFile = 10000

func unhex32(what, s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, api.Errorf(api.CodeBadRequest, "%s %.80q is not a sha256 digest: use 64 lowercase hex digits", what, s)
	}
	return b, nil
}

// AddAttestation stores a verified attestation of a published release file and returns it
// as stored. Errors, each with nothing stored: not_found (no published release file has
// that sha256), attestation_exists (the same bundle or the same signature is already
// stored for the file), too_many (the file has MaxAttestationsPerFile).
func (db *DB) AddAttestation(ctx context.Context, a NewAttestation) (api.Attestation, error) {
	file, err := unhex32("file digest", a.FileSHA256)
	if err != nil {
		return api.Attestation{}, err
	}
	bsum, err := unhex32("bundle digest", a.BundleSHA256)
	if err != nil {
		return api.Attestation{}, err
	}
	ssum, err := unhex32("signature digest", a.SignatureSHA256)
	if err != nil {
		return api.Attestation{}, err
	}
	tsum, err := unhex32("trusted root digest", a.TrustedRootSHA256)
	if err != nil {
		return api.Attestation{}, err
	}
	out := a.Attestation
	err = db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// One writer per file at a time, so the count bound and the duplicate answer hold
		// under concurrent posts (the unique constraints hold regardless).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('attestations:' || encode($1::bytea, 'hex'), 0))`, file); err != nil {
			return fmt.Errorf("locking the attestations of sha256:%s: %w", a.FileSHA256, err)
		}
		var published bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM release_files f JOIN projects p ON p.name = f.project
			WHERE f.sha256 = $1 AND f.role_version <= p.published_version)`, file).Scan(&published); err != nil {
			return fmt.Errorf("looking up release file sha256:%s: %w", a.FileSHA256, err)
		}
		if !published {
			return api.Errorf(api.CodeNotFound, "no published release file has sha256 %s: attestations attach to files of published releases (check the digest with cairn releases)", a.FileSHA256)
		}
		var seq int64
		var same string
		err := tx.QueryRow(ctx, `SELECT seq, CASE WHEN bundle_sha256 = $2 THEN 'bundle' ELSE 'signature' END FROM attestations
			WHERE file_sha256 = $1 AND (bundle_sha256 = $2 OR signature_sha256 = $3) LIMIT 1`, file, bsum, ssum).Scan(&seq, &same)
		switch {
		case err == nil:
			return api.Errorf(api.CodeAttestationExists, "attestation %d of sha256:%s already has this %s; nothing was stored", seq, a.FileSHA256, same)
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("looking for a duplicate attestation: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM attestations WHERE file_sha256 = $1`, file).Scan(&n); err != nil {
			return fmt.Errorf("counting the attestations of sha256:%s: %w", a.FileSHA256, err)
		}
		if n >= MaxAttestationsPerFile {
			return api.Errorf(api.CodeTooMany, "sha256:%s already has %d attestations, the most one file may have", a.FileSHA256, n)
		}
		err = tx.QueryRow(ctx, `INSERT INTO attestations (file_sha256, bundle_sha256, signature_sha256, bundle, san, issuer, predicate_type,
				source_repository, build_signer, log_time, log_index, trusted_root_sha256)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq, created_at`,
			file, bsum, ssum, a.Bundle, a.Identity.SAN, a.Identity.Issuer, a.PredicateType,
			a.SourceRepository, a.BuildSigner, a.LogTime, a.LogIndex, tsum).Scan(&out.Seq, &out.CreatedAt)
		if isUniqueViolation(err) {
			return api.Errorf(api.CodeAttestationExists, "this attestation of sha256:%s is already stored; nothing was stored", a.FileSHA256)
		}
		if err != nil {
			return fmt.Errorf("storing an attestation of sha256:%s: %w", a.FileSHA256, err)
		}
		// The next publish commits the file's new index (tufrepo/attestindex.go): the shard
		// becomes due (wanted > signed), which also makes the publisher sign the top
		// recently-claimed node, whose signing signs the shards.
		if _, err := tx.Exec(ctx, `INSERT INTO attestation_shards (shard) VALUES ($1)
			ON CONFLICT (shard) DO UPDATE SET wanted = attestation_shards.wanted + 1`, tufrepo.AttestationShard(a.FileSHA256)); err != nil {
			return fmt.Errorf("flagging the attestation index: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, 'attestation')`, ChannelStaged); err != nil {
			return fmt.Errorf("notifying publishers: %w", err)
		}
		return nil
	})
	if err != nil {
		return api.Attestation{}, err
	}
	out.CreatedAt = out.CreatedAt.UTC()
	return out, nil
}

const attestationColumns = `seq, file_sha256, bundle_sha256, san, issuer, predicate_type, source_repository, build_signer, log_time, log_index, created_at`

func scanAttestation(r pgx.CollectableRow) (api.Attestation, error) {
	var a api.Attestation
	var file, bundle []byte
	err := r.Scan(&a.Seq, &file, &bundle, &a.Identity.SAN, &a.Identity.Issuer, &a.PredicateType, &a.SourceRepository, &a.BuildSigner, &a.LogTime, &a.LogIndex, &a.CreatedAt)
	a.FileSHA256, a.BundleSHA256 = hex.EncodeToString(file), hex.EncodeToString(bundle)
	a.LogTime, a.CreatedAt = a.LogTime.UTC(), a.CreatedAt.UTC()
	return a, err
}

// Attestations lists up to limit attestations of a file with seq > after, by seq.
func (db *DB) Attestations(ctx context.Context, fileSHA256 string, after int64, limit int) ([]api.Attestation, error) {
	file, err := unhex32("file digest", fileSHA256)
	if err != nil {
		return nil, err
	}
	rows, err := db.Pool.Query(ctx, `SELECT `+attestationColumns+` FROM attestations WHERE file_sha256 = $1 AND seq > $2 ORDER BY seq LIMIT $3`, file, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing the attestations of sha256:%s: %w", fileSHA256, err)
	}
	out, err := pgx.CollectRows(rows, scanAttestation)
	if err != nil {
		return nil, fmt.Errorf("listing the attestations of sha256:%s: %w", fileSHA256, err)
	}
	return out, nil
}

// AttestationBundle returns the stored bytes of one attestation and its record; not_found
// if the file has no attestation with that bundle digest.
func (db *DB) AttestationBundle(ctx context.Context, fileSHA256, bundleSHA256 string) (api.Attestation, []byte, error) {
	file, err := unhex32("file digest", fileSHA256)
	if err != nil {
		return api.Attestation{}, nil, err
	}
	bsum, err := unhex32("bundle digest", bundleSHA256)
	if err != nil {
		return api.Attestation{}, nil, err
	}
	rows, err := db.Pool.Query(ctx, `SELECT `+attestationColumns+`, bundle FROM attestations WHERE file_sha256 = $1 AND bundle_sha256 = $2`, file, bsum)
	if err != nil {
		return api.Attestation{}, nil, fmt.Errorf("reading attestation %s: %w", bundleSHA256, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return api.Attestation{}, nil, fmt.Errorf("reading attestation %s: %w", bundleSHA256, err)
		}
		return api.Attestation{}, nil, api.Errorf(api.CodeNotFound, "sha256:%s has no attestation whose bundle has sha256 %s", fileSHA256, bundleSHA256)
	}
	var a api.Attestation
	var f, b, raw []byte
	if err := rows.Scan(&a.Seq, &f, &b, &a.Identity.SAN, &a.Identity.Issuer, &a.PredicateType, &a.SourceRepository, &a.BuildSigner, &a.LogTime, &a.LogIndex, &a.CreatedAt, &raw); err != nil {
		return api.Attestation{}, nil, fmt.Errorf("reading attestation %s: %w", bundleSHA256, err)
	}
	a.FileSHA256, a.BundleSHA256 = hex.EncodeToString(f), hex.EncodeToString(b)
	a.LogTime, a.CreatedAt = a.LogTime.UTC(), a.CreatedAt.UTC()
	return a, raw, nil
}

// AttestationSummary counts a file's attestations by identity and predicate type.
func (db *DB) AttestationSummary(ctx context.Context, fileSHA256 string) (*api.AttestationSummary, error) {
	file, err := unhex32("file digest", fileSHA256)
	if err != nil {
		return nil, err
	}
	s := &api.AttestationSummary{FileSHA256: fileSHA256, Identities: []api.IdentityCount{}, PredicateTypes: []api.PredicateTypeCount{}}
	var first, last *time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), min(log_time), max(log_time) FROM attestations WHERE file_sha256 = $1`, file).Scan(&s.Count, &first, &last); err != nil {
		return nil, fmt.Errorf("summarising the attestations of sha256:%s: %w", fileSHA256, err)
	}
	if first != nil {
		f, l := first.UTC(), last.UTC()
		s.FirstLogTime, s.LastLogTime = &f, &l
	}
	rows, err := db.Pool.Query(ctx, `SELECT san, issuer, count(*), array_agg(DISTINCT predicate_type ORDER BY predicate_type)
		FROM attestations WHERE file_sha256 = $1 GROUP BY san, issuer ORDER BY count(*) DESC, san, issuer`, file)
	if err != nil {
		return nil, fmt.Errorf("summarising the attestations of sha256:%s: %w", fileSHA256, err)
	}
	s.Identities, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.IdentityCount, error) {
		var c api.IdentityCount
		err := r.Scan(&c.SAN, &c.Issuer, &c.Count, &c.PredicateTypes)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("summarising the attestations of sha256:%s: %w", fileSHA256, err)
	}
	rows, err = db.Pool.Query(ctx, `SELECT predicate_type, count(*) FROM attestations WHERE file_sha256 = $1
		GROUP BY predicate_type ORDER BY count(*) DESC, predicate_type`, file)
	if err != nil {
		return nil, fmt.Errorf("summarising the attestations of sha256:%s: %w", fileSHA256, err)
	}
	s.PredicateTypes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.PredicateTypeCount, error) {
		var c api.PredicateTypeCount
		err := r.Scan(&c.PredicateType, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("summarising the attestations of sha256:%s: %w", fileSHA256, err)
	}
	return s, nil
}

// The repository's own TUF targets (tufrepo/owntargets.go): the Sigstore trusted root.
var _ tufrepo.OwnTargetsTx = publishTx{}

// OwnTargets lists the current Sigstore trusted root, if one was ever set.
func (p publishTx) OwnTargets(ctx context.Context) (map[string]*metadata.TargetFiles, error) {
	var raw []byte
	err := p.tx.QueryRow(ctx, `SELECT raw FROM sigstore_trusted_roots ORDER BY current_since DESC LIMIT 1`).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the Sigstore trusted root: %w", err)
	}
	tf, err := tufrepo.OwnTargetFile(tufrepo.SigstoreTrustedRootTarget, raw)
	if err != nil {
		return nil, fmt.Errorf("describing the Sigstore trusted root: %w", err)
	}
	return map[string]*metadata.TargetFiles{tufrepo.SigstoreTrustedRootTarget: tf}, nil
}

// SetSigstoreTrustedRoot makes raw the repository's Sigstore trusted root. If it is not
// already the current one, it is recorded (or made current again) and the top
// recently-claimed node is flagged and publishers notified, so the next publish lists it;
// changed says so.
func (db *DB) SetSigstoreTrustedRoot(ctx context.Context, raw []byte) (changed bool, err error) {
	sum := sha256.Sum256(raw)
	err = db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		changed = false
		var cur []byte
		err := tx.QueryRow(ctx, `SELECT sha256 FROM sigstore_trusted_roots ORDER BY current_since DESC LIMIT 1 FOR UPDATE`).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading the Sigstore trusted root: %w", err)
		}
		if bytes.Equal(cur, sum[:]) {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sigstore_trusted_roots (sha256, raw) VALUES ($1, $2)
			ON CONFLICT (sha256) DO UPDATE SET current_since = clock_timestamp()`, sum[:], raw); err != nil {
			return fmt.Errorf("recording the Sigstore trusted root: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE shards SET dirty = true WHERE tree = 'recently-claimed' AND prefix = ''`); err != nil {
			return fmt.Errorf("flagging the recently-claimed top node: %w", err)
		}
		// Publishing replicas take flagged nodes in their next publish.
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, 'sigstore-trusted-root')`, ChannelStaged); err != nil {
			return fmt.Errorf("notifying publishers: %w", err)
		}
		changed = true
		return nil
	})
	return changed, err
}

// SigstoreTrustedRootBytes returns a trusted root the repository has published, by its
// sha256 (hex); not_found for any other.
func (db *DB) SigstoreTrustedRootBytes(ctx context.Context, sha256Hex string) ([]byte, error) {
	sum, err := unhex32("trusted root digest", sha256Hex)
	if err != nil {
		return nil, api.Errorf(api.CodeNotFound, "no Sigstore trusted root has sha256 %.80q", sha256Hex)
	}
	var raw []byte
	err = db.Pool.QueryRow(ctx, `SELECT raw FROM sigstore_trusted_roots WHERE sha256 = $1`, sum).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, api.Errorf(api.CodeNotFound, "no Sigstore trusted root has sha256 %s", sha256Hex)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Sigstore trusted root %s: %w", sha256Hex, err)
	}
	return raw, nil
}

// The attestation index roles (tufrepo.AttestationIndexTx).
var _ tufrepo.AttestationIndexTx = publishTx{}

func (p publishTx) AttestationShards(ctx context.Context) ([]tufrepo.AttestationShardState, error) {
	rows, err := p.tx.Query(ctx, `
		SELECT s.shard, coalesce(m.version, 0), coalesce(m.expires, 'epoch'::timestamptz), s.wanted > s.signed, s.wanted
		FROM attestation_shards s
		LEFT JOIN LATERAL (SELECT version, expires FROM metadata WHERE role = '_attestations.' || s.shard ORDER BY version DESC LIMIT 1) m ON true
		ORDER BY s.shard`)
	if err != nil {
		return nil, fmt.Errorf("reading the attestation index roles: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tufrepo.AttestationShardState, error) {
		var st tufrepo.AttestationShardState
		return st, r.Scan(&st.Shard, &st.Version, &st.Expires, &st.Dirty, &st.Wanted)
	})
}

func (p publishTx) AttestationShardTargets(ctx context.Context, shard string) (map[string]*metadata.TargetFiles, error) {
	rows, err := p.tx.Query(ctx, `SELECT file_sha256, array_agg(encode(bundle_sha256, 'hex') ORDER BY bundle_sha256)
		FROM attestations WHERE substr(encode(file_sha256, 'hex'), 1, 2) = $1 GROUP BY file_sha256`, shard)
	if err != nil {
		return nil, fmt.Errorf("reading the attestations of shard %s: %w", shard, err)
	}
	type fileBundles struct {
		file    []byte
		bundles []string
	}
	files, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fileBundles, error) {
		var f fileBundles
		return f, r.Scan(&f.file, &f.bundles)
	})
	if err != nil {
		return nil, fmt.Errorf("reading the attestations of shard %s: %w", shard, err)
	}
	out := make(map[string]*metadata.TargetFiles, len(files))
	for _, f := range files {
		file := hex.EncodeToString(f.file)
		raw, err := tufrepo.EncodeAttestationIndex(file, f.bundles)
		if err != nil {
			return nil, err
		}
		path := tufrepo.AttestationIndexTarget(file)
		tf, err := tufrepo.OwnTargetFile(path, raw)
		if err != nil {
			return nil, fmt.Errorf("describing index %s: %w", path, err)
		}
		sum := sha256.Sum256(raw)
		if _, err := p.tx.Exec(ctx, `INSERT INTO attestation_indexes (sha256, file_sha256, raw) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING`, sum[:], f.file, raw); err != nil {
			return nil, fmt.Errorf("keeping index %s: %w", path, err)
		}
		out[path] = tf
	}
	return out, nil
}

func (p publishTx) CleanAttestationShards(ctx context.Context, signed []tufrepo.AttestationShardState) error {
	for _, s := range signed {
		// Only up to what this publish read: a post since then keeps the shard due.
		if _, err := p.tx.Exec(ctx, `UPDATE attestation_shards SET signed = greatest(signed, $2) WHERE shard = $1`, s.Shard, s.Wanted); err != nil {
			return fmt.Errorf("recording the signed attestation index %s: %w", s.Shard, err)
		}
	}
	return nil
}

func (p publishTx) AttestationShardsDue(ctx context.Context) (bool, error) {
	var due bool
	if err := p.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM attestation_shards WHERE wanted > signed)`).Scan(&due); err != nil {
		return false, fmt.Errorf("reading the attestation index flags: %w", err)
	}
	return due, nil
}

// AttestationIndexBytes returns an index target the repository has signed, by its sha256
// (hex), if it is the index of fileSHA256; not_found otherwise.
func (db *DB) AttestationIndexBytes(ctx context.Context, fileSHA256, sha256Hex string) ([]byte, error) {
	file, err := unhex32("file digest", fileSHA256)
	if err != nil {
		return nil, api.Errorf(api.CodeNotFound, "no attestation index for %.80q", fileSHA256)
	}
	sum, err := unhex32("index digest", sha256Hex)
	if err != nil {
		return nil, api.Errorf(api.CodeNotFound, "no attestation index has sha256 %.80q", sha256Hex)
	}
	var raw []byte
	err = db.Pool.QueryRow(ctx, `SELECT raw FROM attestation_indexes WHERE sha256 = $1 AND file_sha256 = $2`, sum, file).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, api.Errorf(api.CodeNotFound, "no attestation index of sha256:%s has sha256 %s", fileSHA256, sha256Hex)
	}
	if err != nil {
		return nil, fmt.Errorf("reading attestation index %s: %w", sha256Hex, err)
	}
	return raw, nil
}

// The bytes of published role versions, for the publisher's check of the top
// recently-claimed node (tufrepo.PublishedRoleTx).
var _ tufrepo.PublishedRoleTx = publishTx{}

func (p publishTx) RoleRaw(ctx context.Context, role string, version int64) ([]byte, error) {
	var raw, sum []byte
	var stored string
	if err := p.tx.QueryRow(ctx, `SELECT raw, stored, sha256 FROM metadata WHERE role = $1 AND version = $2`, role, version).Scan(&raw, &stored, &sum); err != nil {
		return nil, fmt.Errorf("reading %s version %d: %w", role, version, err)
	}
	return p.db.metaBytes(ctx, role, version, raw, stored, sum)
}

// ProjectKeys is a project's current delegation: the maintainer keys (by TUF key ID) that
// key-based attestations of its files may be signed with.
type ProjectKeys struct {
	Project string
	KeyIDs  []string
	Keys    map[string]*metadata.Key // shared: read only
}

// AttestationKeys returns the current delegation of every project whose published
// releases contain a file with this sha256, by project name. The delegation is the one the
// server has accepted: a maintainer change is in it from its acceptance (the next publish
// signs it), and a removed key is out of it from then on.
func (db *DB) AttestationKeys(ctx context.Context, fileSHA256 string) ([]ProjectKeys, error) {
	file, err := unhex32("file digest", fileSHA256)
	if err != nil {
		return nil, err
	}
	rows, err := db.Pool.Query(ctx, `SELECT p.name, p.keys, p.keyids FROM projects p
		WHERE EXISTS (SELECT 1 FROM release_files f WHERE f.project = p.name AND f.sha256 = $1 AND f.role_version <= p.published_version)
		ORDER BY p.name`, file)
	if err != nil {
		return nil, fmt.Errorf("looking up the maintainer keys of sha256:%s: %w", fileSHA256, err)
	}
	defer rows.Close()
	var out []ProjectKeys
	for rows.Next() {
		var pk ProjectKeys
		var raw []byte
		if err := rows.Scan(&pk.Project, &raw, &pk.KeyIDs); err != nil {
			return nil, fmt.Errorf("looking up the maintainer keys of sha256:%s: %w", fileSHA256, err)
		}
		if pk.Keys, err = db.keys.decode(raw); err != nil {
			return nil, fmt.Errorf("decoding keys of project %s: %w", pk.Project, err)
		}
		out = append(out, pk)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up the maintainer keys of sha256:%s: %w", fileSHA256, err)
	}
	return out, nil
}

// CommittedAttestation is an attestation that the newest published attestation index of
// its file lists: what the registry serves as an OCI referrer of the file's release.
type CommittedAttestation struct {
	FileSHA256    string // hex
	BundleSHA256  string // hex
	BundleSize    int64
	PredicateType string
}

// CommittedAttestations returns, for each of files (sha256 hex) that has any, the
// attestations that the newest published version of its index role commits, sorted by
// bundle digest. It reads the set from the signed metadata (role, then the index target
// by its signed hash), not from the attestations table: an attestation posted but not yet
// published is not in it, and one the index commits but the table no longer has (a
// damaged database) is left out, which a client comparing with the index sees.
func (db *DB) CommittedAttestations(ctx context.Context, files []string) (map[string][]CommittedAttestation, error) {
	sums := make([][]byte, 0, len(files))
	for _, f := range files {
		b, err := unhex32("file digest", f)
		if err != nil {
			return nil, err
		}
		sums = append(sums, b)
	}
	// Most release files have no attestation: only those that do cost a metadata read.
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT encode(file_sha256, 'hex') FROM attestations WHERE file_sha256 = ANY($1)`, sums)
	if err != nil {
		return nil, fmt.Errorf("looking for attested release files: %w", err)
	}
	attested, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking for attested release files: %w", err)
	}
	out := map[string][]CommittedAttestation{}
	shards := map[string]*metadata.Metadata[metadata.TargetsType]{}
	for _, file := range attested {
		shard := tufrepo.AttestationShard(file)
		md, seen := shards[shard]
		if !seen {
			m, err := db.LatestPublished(ctx, tufrepo.AttestationShardRole(shard))
			switch {
			case errors.Is(err, ErrNotBootstrapped):
				// Never published: nothing of this shard is committed yet.
			case err != nil:
				return nil, err
			default:
				if md, err = metadata.Targets().FromBytes(m.Raw); err != nil {
					return nil, fmt.Errorf("reading attestation index role %s version %d: %w", m.Role, m.Version, err)
				}
			}
			shards[shard] = md
		}
		if md == nil {
			continue
		}
		tf, ok := md.Signed.Targets[tufrepo.AttestationIndexTarget(file)]
		if !ok {
			continue
		}
		bundles, err := db.committedIndex(ctx, file, tf)
		if err != nil {
			return nil, err
		}
		rows, err := db.Pool.Query(ctx, `SELECT encode(bundle_sha256, 'hex'), length(bundle), predicate_type FROM attestations
			WHERE file_sha256 = decode($1, 'hex') AND encode(bundle_sha256, 'hex') = ANY($2) ORDER BY bundle_sha256`, file, bundles)
		if err != nil {
			return nil, fmt.Errorf("reading the committed attestations of sha256:%s: %w", file, err)
		}
		as, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CommittedAttestation, error) {
			c := CommittedAttestation{FileSHA256: file}
			return c, r.Scan(&c.BundleSHA256, &c.BundleSize, &c.PredicateType)
		})
		if err != nil {
			return nil, fmt.Errorf("reading the committed attestations of sha256:%s: %w", file, err)
		}
		if len(as) > 0 {
			out[file] = as
		}
	}
	return out, nil
}

// committedIndex returns the bundle digests of the index target tf of file, checked
// against the signed length and hash.
func (db *DB) committedIndex(ctx context.Context, file string, tf *metadata.TargetFiles) ([]string, error) {
	want := hex.EncodeToString(tf.Hashes["sha256"])
	raw, err := db.AttestationIndexBytes(ctx, file, want)
	if err != nil {
		return nil, fmt.Errorf("reading the published attestation index of sha256:%s: %w", file, err)
	}
	if err := tf.VerifyLengthHashes(raw); err != nil {
		return nil, fmt.Errorf("the stored attestation index of sha256:%s does not match its signed target: %w", file, err)
	}
	var idx tufrepo.AttestationIndex
	if err := json.Unmarshal(raw, &idx); err != nil || idx.FileSHA256 != file {
		return nil, fmt.Errorf("the published attestation index of sha256:%s is not the index of that file (%v)", file, err)
	}
	return idx.Bundles, nil
}

// AttestationBundleFiles returns the files (sha256 hex) of published releases of project
// that have an attestation whose bundle has sha256 bundleSHA256 (hex); none for a digest
// that is not well formed.
func (db *DB) AttestationBundleFiles(ctx context.Context, project, bundleSHA256 string) ([]string, error) {
	bsum, err := hex.DecodeString(bundleSHA256)
	if err != nil || len(bsum) != 32 {
		return nil, nil
	}
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT encode(a.file_sha256, 'hex') FROM attestations a
		WHERE a.bundle_sha256 = $2 AND EXISTS (SELECT 1 FROM release_files f JOIN projects p ON p.name = f.project
			WHERE f.project = $1 AND f.sha256 = a.file_sha256 AND f.role_version <= p.published_version)`, project, bsum)
	if err != nil {
		return nil, fmt.Errorf("looking up attestation bundle %s in %s: %w", bundleSHA256, project, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking up attestation bundle %s in %s: %w", bundleSHA256, project, err)
	}
	return out, nil
}
