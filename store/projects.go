package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Proposals lists the open (unexpired) proposals of a project.
func (db *DB) Proposals(ctx context.Context, project string, now time.Time) (*api.ProposalList, error) {
	var threshold int
	if err := db.Pool.QueryRow(ctx, `SELECT threshold FROM projects WHERE name = $1`, project).Scan(&threshold); errors.Is(err, pgx.ErrNoRows) {
		return nil, api.Errorf(api.CodeNotFound, "project %q does not exist", project)
	} else if err != nil {
		return nil, fmt.Errorf("reading project %s: %w", project, err)
	}
	rows, err := db.Pool.Query(ctx, `SELECT kind, version, signed, signatures, proposed_by, created_at, expires_at FROM proposals WHERE project = $1 AND expires_at > $2 ORDER BY kind DESC, version`, project, now)
	if err != nil {
		return nil, fmt.Errorf("listing proposals of %s: %w", project, err)
	}
	out := &api.ProposalList{Project: project, Proposals: []api.Proposal{}}
	var p api.Proposal
	var signed, sigsJSON []byte
	_, err = pgx.ForEachRow(rows, []any{&p.Kind, &p.Version, &signed, &sigsJSON, &p.ProposedBy, &p.CreatedAt, &p.ExpiresAt}, func() error {
		var sigs []metadata.Signature
		if err := json.Unmarshal(sigsJSON, &sigs); err != nil {
			return err
		}
		q := p
		q.Project, q.Threshold = project, threshold
		q.CreatedAt, q.ExpiresAt = p.CreatedAt.UTC(), p.ExpiresAt.UTC()
		q.SignedBy = make([]string, 0, len(sigs))
		for _, s := range sigs {
			q.SignedBy = append(q.SignedBy, s.KeyID)
		}
		q.Metadata = tufrepo.Envelope(signed, sigs)
		out.Proposals = append(out.Proposals, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing proposals of %s: %w", project, err)
	}
	return out, nil
}

func lockProject(ctx context.Context, tx pgx.Tx, project string) (tufrepo.ProjectState, error) {
	st := tufrepo.ProjectState{Files: map[string]tufrepo.PublishedFile{}}
	var keys []byte
	d := &st.Delegation
	err := tx.QueryRow(ctx, `SELECT name, keys, keyids, threshold, role_version FROM projects WHERE name = $1 FOR UPDATE`, project).
		Scan(&d.Name, &keys, &d.KeyIDs, &d.Threshold, &st.CurrentVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, api.Errorf(api.CodeNotFound, "project %q does not exist: create it first with `cairn project create`", project)
	}
	if err != nil {
		return st, fmt.Errorf("locking project %s: %w", project, err)
	}
	if err := json.Unmarshal(keys, &d.Keys); err != nil {
		return st, fmt.Errorf("decoding keys of project %s: %w", project, err)
	}
	rows, err := tx.Query(ctx, `SELECT path, length, sha256, custom FROM release_files WHERE project = $1`, project)
	if err != nil {
		return st, fmt.Errorf("reading files of project %s: %w", project, err)
	}
	var path string
	var length int64
	var sum, custom []byte
	_, err = pgx.ForEachRow(rows, []any{&path, &length, &sum, &custom}, func() error {
		st.Files[path] = tufrepo.PublishedFile{Length: length, SHA256: hex.EncodeToString(sum), Custom: slices.Clone(custom)}
		return nil
	})
	return st, err
}

func blobSizes(ctx context.Context, tx pgx.Tx) tufrepo.BlobSizes {
	return func(hexes []string) (map[string]int64, error) {
		sums := make([][]byte, 0, len(hexes))
		for _, h := range hexes {
			b, err := hex.DecodeString(h)
			if err != nil {
				return nil, err
			}
			sums = append(sums, b)
		}
		rows, err := tx.Query(ctx, `SELECT sha256, size FROM blobs WHERE sha256 = ANY($1)`, sums)
		if err != nil {
			return nil, err
		}
		out := map[string]int64{}
		var sum []byte
		var size int64
		_, err = pgx.ForEachRow(rows, []any{&sum, &size}, func() error {
			out[hex.EncodeToString(sum)] = size
			return nil
		})
		return out, err
	}
}

func stageRole(ctx context.Context, tx pgx.Tx, project string, a *tufrepo.AcceptedRole) error {
	if err := insertMetadata(ctx, tx, project, a.Version, a.Raw, a.Expires, api.ActionAccepted, nil); err != nil {
		return err
	}
	if n := len(a.NewFiles); n > 0 {
		// One INSERT from arrays: a COPY costs several round trips, which for the one or
		// few files of an upload was its most expensive statement (BENCHMARKS.md).
		paths, versions, names := make([]string, n), make([]string, n), make([]string, n)
		lengths, sums, customs := make([]int64, n), make([][]byte, n), make([]*string, n)
		for i, f := range a.NewFiles {
			paths[i], versions[i], names[i], lengths[i] = f.Path, f.Version, f.Filename, f.Length
			sums[i], _ = hex.DecodeString(f.SHA256)
			if len(f.Custom) > 0 {
				c := string(f.Custom)
				customs[i] = &c
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO release_files (path, project, version, filename, length, sha256, custom, role_version)
			SELECT p, $2, v, f, l, s, c::jsonb, $3 FROM unnest($1::text[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::text[]) AS u(p, v, f, l, s, c)`,
			paths, project, a.Version, versions, names, lengths, sums, customs); err != nil {
			return fmt.Errorf("storing release files of %s: %w", project, err)
		}
	}
	for _, f := range a.ChangedCustom {
		var custom any
		if len(f.Custom) > 0 {
			custom = string(f.Custom)
		}
		if _, err := tx.Exec(ctx, `UPDATE release_files SET custom = $2 WHERE path = $1`, f.Path, custom); err != nil {
			return fmt.Errorf("updating custom data of %s: %w", f.Path, err)
		}
	}
	// Proposals for this version or earlier can never complete now.
	if _, err := tx.Exec(ctx, `DELETE FROM proposals WHERE project = $1 AND kind = 'role' AND version <= $2`, project, a.Version); err != nil {
		return fmt.Errorf("removing superseded proposals: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChannelStaged, project); err != nil {
		return fmt.Errorf("notifying publisher: %w", err)
	}
	return nil
}

// RoleStatus returns the snapshot a project role version was published in (0 if staged).
func (db *DB) RoleStatus(ctx context.Context, project string, version int64) (int64, error) {
	if tufrepo.IsReservedRole(project) {
		return 0, api.Errorf(api.CodeNotFound, "project %q has no role version %d", project, version)
	}
	return db.MetadataStatus(ctx, project, version)
}

// MetadataStatus returns the snapshot a role version was published in (0 if staged).
func (db *DB) MetadataStatus(ctx context.Context, project string, version int64) (int64, error) {
	var snap *int64
	err := db.Pool.QueryRow(ctx, `SELECT snapshot_version FROM metadata WHERE role = $1 AND version = $2`, project, version).Scan(&snap)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, api.Errorf(api.CodeNotFound, "role %q has no version %d", project, version)
	}
	if err != nil {
		return 0, fmt.Errorf("reading status of %s version %d: %w", project, version, err)
	}
	if snap == nil {
		return 0, nil
	}
	return *snap, nil
}

// ListProjects returns up to limit projects with names after `after`, in name order.
func (db *DB) ListProjects(ctx context.Context, after string, limit int) ([]api.Project, error) {
	rows, err := db.Pool.Query(ctx, `SELECT name, delegator, threshold, keys, keyids, role_version, published_version, delegation_version, delegated, created_at FROM projects WHERE name > $1 ORDER BY name LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing projects: %w", err)
	}
	return pgx.CollectRows(rows, scanProject)
}

// GetProject returns one project.
func (db *DB) GetProject(ctx context.Context, name string) (*api.Project, error) {
	rows, err := db.Pool.Query(ctx, `SELECT name, delegator, threshold, keys, keyids, role_version, published_version, delegation_version, delegated, created_at FROM projects WHERE name = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("reading project %s: %w", name, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanProject)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, api.Errorf(api.CodeNotFound, "project %q does not exist", name)
	}
	return &p, err
}

func scanProject(r pgx.CollectableRow) (api.Project, error) {
	var p api.Project
	var keys []byte
	var keyids []string
	if err := r.Scan(&p.Name, &p.Delegator, &p.Threshold, &keys, &keyids, &p.RoleVersion, &p.PublishedVersion, &p.DelegationVersion, &p.Delegated, &p.CreatedAt); err != nil {
		return p, err
	}
	var km map[string]api.Key
	if err := json.Unmarshal(keys, &km); err != nil {
		return p, err
	}
	slices.Sort(keyids)
	for _, id := range keyids {
		k, ok := km[id]
		if !ok {
			continue
		}
		m := api.Maintainer{KeyID: id, KeyType: k.KeyType, Scheme: k.Scheme, Public: k.KeyVal.Public}
		if tk, err := tufrepo.KeyFromAPI(k); err == nil {
			m.Fingerprint, _ = tufrepo.Fingerprint(tk)
		}
		p.Maintainers = append(p.Maintainers, m)
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return p, nil
}

// Releases returns a project's releases, newest first.
func (db *DB) Releases(ctx context.Context, project string) (*api.ReleaseList, error) {
	if _, err := db.GetProject(ctx, project); err != nil {
		return nil, err
	}
	yanked, err := db.publishedYanks(ctx, project)
	if err != nil {
		return nil, err
	}
	return db.releases(ctx, project, yanked)
}

// ReleasesUnflagged is Releases without the yank flags and without checking that the
// project exists: for callers that read the published role themselves (the web UI keeps
// it parsed, so it does not read and parse it from the database on every page).
func (db *DB) ReleasesUnflagged(ctx context.Context, project string) (*api.ReleaseList, error) {
	return db.releases(ctx, project, nil)
}

// releases lists the release files of a project, newest upload first, flagged yanked (with
// the reason) where yanked has their paths.
func (db *DB) releases(ctx context.Context, project string, yanked map[string]string) (*api.ReleaseList, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT f.version, f.filename, f.path, f.length, f.sha256, f.role_version, f.created_at, f.role_version <= p.published_version
		FROM release_files f JOIN projects p ON p.name = f.project
		WHERE f.project = $1 ORDER BY f.role_version DESC, f.version, f.filename`, project)
	if err != nil {
		return nil, fmt.Errorf("listing releases of %s: %w", project, err)
	}
	byVersion := map[string]*api.Release{}
	var order []string
	var version, filename, path string
	var length, roleVersion int64
	var sum []byte
	var created time.Time
	var published bool
	_, err = pgx.ForEachRow(rows, []any{&version, &filename, &path, &length, &sum, &roleVersion, &created, &published}, func() error {
		r, ok := byVersion[version]
		if !ok {
			r = &api.Release{Project: project, Version: version, UploadedAt: created.UTC(), RoleVersion: roleVersion, Published: published}
			byVersion[version] = r
			order = append(order, version)
		}
		r.Files = append(r.Files, api.File{Name: filename, Path: path, Length: length, SHA256: hex.EncodeToString(sum)})
		if reason, ok := yanked[path]; ok {
			// The first file (by name) that gives a reason gives the release's, as
			// client.ReleasesFromRole picks it.
			r.Yanked = true
			if r.YankReason == "" {
				r.YankReason = reason
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing releases of %s: %w", project, err)
	}
	out := &api.ReleaseList{Project: project, Releases: make([]api.Release, 0, len(order))}
	for _, v := range order {
		out.Releases = append(out.Releases, *byVersion[v])
	}
	return out, nil
}

// publishedYanks returns the paths the published version of a project's role flags as
// yanked, with the reason each gives (maybe empty), so the REST index says what clients
// see, not what is staged.
func (db *DB) publishedYanks(ctx context.Context, project string) (map[string]string, error) {
	var raw []byte
	err := db.Pool.QueryRow(ctx, `SELECT m.raw FROM metadata m JOIN projects p ON p.name = m.role AND m.version = p.published_version WHERE p.name = $1`, project).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading published role of %s: %w", project, err)
	}
	var role struct {
		Signed struct {
			Targets map[string]struct {
				Custom json.RawMessage `json:"custom"`
			} `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &role); err != nil {
		return nil, fmt.Errorf("parsing published role of %s: %w", project, err)
	}
	out := map[string]string{}
	for p, t := range role.Signed.Targets {
		if yanked, reason := tufrepo.ReadYank(t.Custom); yanked {
			out[p] = reason
		}
	}
	return out, nil
}

// TargetFile is a published release file.
type TargetFile struct {
	Length int64
	SHA256 string
}

// PublishedTarget returns the file published at path, or not_found.
func (db *DB) PublishedTarget(ctx context.Context, path string) (*TargetFile, error) {
	var f TargetFile
	var sum []byte
	err := db.Pool.QueryRow(ctx, `SELECT f.length, f.sha256 FROM release_files f JOIN projects p ON p.name = f.project WHERE f.path = $1 AND f.role_version <= p.published_version`, path).Scan(&f.Length, &sum)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, api.Errorf(api.CodeNotFound, "no published target %q", path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading target %s: %w", path, err)
	}
	f.SHA256 = hex.EncodeToString(sum)
	return &f, nil
}

// ApplySubmissions implements tufrepo.PublishTx: the uploads validated outside the
// transaction, stored with one statement per table under the projects' row locks.
func (p publishTx) ApplySubmissions(ctx context.Context, subs []*tufrepo.Submission, snapshot int64) ([]error, error) {
	names := make([]string, 0, len(subs))
	for _, s := range subs {
		names = append(names, s.Project)
	}
	rows, err := p.tx.Query(ctx, `SELECT name, role_version FROM projects WHERE name = ANY($1) ORDER BY name FOR UPDATE`, names)
	if err != nil {
		return nil, fmt.Errorf("locking the projects of uploads: %w", err)
	}
	current := map[string]int64{}
	var name string
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &v}, func() error { current[name] = v; return nil }); err != nil {
		return nil, fmt.Errorf("locking the projects of uploads: %w", err)
	}
	errs := make([]error, len(subs))
	var (
		roles, fpaths, fprojects, fversions, fnames, cpaths []string
		versions, lengths, flengths, froleVersions          []int64
		raws, sums, fsums                                   [][]byte
		expires                                             []time.Time
		fcustoms, ccustoms                                  []*string
	)
	for i, s := range subs {
		cur, ok := current[s.Project]
		switch {
		case !ok:
			errs[i] = api.Errorf(api.CodeNotFound, "project %q does not exist", s.Project)
			continue
		case cur != s.Expected:
			errs[i] = tufrepo.VersionConflict(s, cur)
			continue
		}
		a := s.Accepted
		current[s.Project] = a.Version
		roles, versions, raws, lengths, sums, expires = append(roles, s.Project), append(versions, a.Version), append(raws, a.Raw), append(lengths, int64(len(a.Raw))), append(sums, s.SHA256), append(expires, a.Expires)
		for _, f := range a.NewFiles {
			sum, _ := hex.DecodeString(f.SHA256)
			fpaths, fprojects, fversions, fnames = append(fpaths, f.Path), append(fprojects, s.Project), append(fversions, f.Version), append(fnames, f.Filename)
			flengths, fsums, froleVersions, fcustoms = append(flengths, f.Length), append(fsums, sum), append(froleVersions, a.Version), append(fcustoms, customText(f.Custom))
		}
		for _, f := range a.ChangedCustom {
			cpaths, ccustoms = append(cpaths, f.Path), append(ccustoms, customText(f.Custom))
		}
	}
	if len(roles) == 0 {
		return errs, nil
	}
	if _, err := p.tx.Exec(ctx, `
		INSERT INTO metadata (role, version, raw, length, sha256, expires, action, snapshot_version)
		SELECT r, v, raw, l, s, e, 'accepted', $7 FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bigint[], $5::bytea[], $6::timestamptz[]) AS u(r, v, raw, l, s, e)`,
		roles, versions, raws, lengths, sums, expires, snapshot); err != nil {
		return nil, fmt.Errorf("storing uploaded role versions: %w", err)
	}
	if len(fpaths) > 0 {
		if _, err := p.tx.Exec(ctx, `
			INSERT INTO release_files (path, project, version, filename, length, sha256, custom, role_version)
			SELECT p, pr, v, f, l, s, c::jsonb, rv FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bytea[], $7::text[], $8::bigint[]) AS u(p, pr, v, f, l, s, c, rv)`,
			fpaths, fprojects, fversions, fnames, flengths, fsums, fcustoms, froleVersions); err != nil {
			return nil, fmt.Errorf("storing uploaded release files: %w", err)
		}
	}
	if len(cpaths) > 0 {
		if _, err := p.tx.Exec(ctx, `UPDATE release_files r SET custom = u.c::jsonb FROM unnest($1::text[], $2::text[]) AS u(p, c) WHERE r.path = u.p`, cpaths, ccustoms); err != nil {
			return nil, fmt.Errorf("updating custom data of release files: %w", err)
		}
	}
	if _, err := p.tx.Exec(ctx, `UPDATE projects p SET role_version = u.v, published_version = u.v FROM unnest($1::text[], $2::bigint[]) AS u(n, v) WHERE p.name = u.n`, roles, versions); err != nil {
		return nil, fmt.Errorf("updating the projects of uploads: %w", err)
	}
	// Proposals for these versions or earlier can never complete now.
	if _, err := p.tx.Exec(ctx, `DELETE FROM proposals pr USING unnest($1::text[], $2::bigint[]) AS u(n, v) WHERE pr.project = u.n AND pr.kind = 'role' AND pr.version <= u.v`, roles, versions); err != nil {
		return nil, fmt.Errorf("removing superseded proposals: %w", err)
	}
	// The next upload of each project is validated against these files. Remembered before
	// the commit: the cache is keyed by role version and digest, so an entry of a publish
	// that fails can only match a later version with the same bytes, and the same files.
	for i, s := range subs {
		if errs[i] == nil {
			p.db.files.rememberPublished(s)
		}
	}
	return errs, nil
}

func customText(c json.RawMessage) *string {
	if len(c) == 0 {
		return nil
	}
	s := string(c)
	return &s
}

// UploadState reads what an upload of project is validated against, without locking: its
// delegation, role version and published files. The publish that stores the upload checks
// under the row lock that the role version is still the same (tufrepo.Submission.Expected).
// The delegation's keys and the files are shared with other uploads of the project: read
// them only. The files come from db.files when it holds them for the project's current
// role (version and digest); only otherwise does PostgreSQL send them all.
func (db *DB) UploadState(ctx context.Context, project string) (tufrepo.ProjectState, error) {
	st, _, err := db.uploadState(ctx, project, nil)
	return st, err
}

// UploadStateWithBlobs is UploadState that also looks up, in the same query, the blobs an
// upload's targets name (paths[i] → sums[i], tufrepo.Proposal.TargetSums): those of the
// paths the project has not published as far as this replica remembers, all of them when
// it remembers nothing. The BlobSizes it returns answers from that lookup, and asks
// PostgreSQL only for digests it was not given (the remembered files were not current).
// It saves validation's own round trip and statement (BlobSizes).
func (db *DB) UploadStateWithBlobs(ctx context.Context, project string, paths []string, sums [][]byte) (tufrepo.ProjectState, tufrepo.BlobSizes, error) {
	var ask [][]byte
	if cached, ok := db.files.get(project); ok {
		for i, p := range paths {
			if _, published := cached.files[p]; !published {
				ask = append(ask, sums[i])
			}
		}
	} else {
		ask = sums
	}
	if ask == nil {
		ask = [][]byte{} // asked for nothing: every digest is looked up when wanted
	}
	st, found, err := db.uploadState(ctx, project, ask)
	if err != nil {
		return st, nil, err
	}
	asked := make(map[string]bool, len(ask))
	for _, s := range ask {
		asked[hex.EncodeToString(s)] = true
	}
	query := db.BlobSizes(ctx)
	return st, func(hexes []string) (map[string]int64, error) {
		out := make(map[string]int64, len(hexes))
		var rest []string
		for _, h := range hexes {
			if !asked[h] {
				rest = append(rest, h)
			} else if size, ok := found[h]; ok {
				out[h] = size
			}
		}
		if len(rest) > 0 {
			more, err := query(rest)
			if err != nil {
				return nil, err
			}
			for h, size := range more {
				out[h] = size
			}
		}
		return out, nil
	}, nil
}

// uploadState reads the state and, when blobs is not nil, which of those blobs are
// recorded (hex → size).
func (db *DB) uploadState(ctx context.Context, project string, blobs [][]byte) (tufrepo.ProjectState, map[string]int64, error) {
	var st tufrepo.ProjectState
	var keys, roleSum []byte
	d := &st.Delegation
	var paths []string
	var lengths []int64
	var sums [][]byte
	var customs []*string
	var blobSums [][]byte
	var blobSizes []int64
	cached, haveCached := db.files.get(project)
	cachedVersion, cachedSum := int64(-1), []byte(nil)
	if haveCached {
		cachedVersion, cachedSum = cached.version, cached.sha256[:]
	}
	// The files are aggregated only when the cached list is not the current role's: the
	// lateral subquery's condition names only the project row and parameters, so
	// PostgreSQL evaluates it once (a one-time filter) and reads no release_files row on a
	// hit. Both metadata lookups are by the full primary key (role, version): a join on it
	// was planned as a scan of every version of the role.
	err := db.Pool.QueryRow(ctx, `
		SELECT p.name, p.keys, p.keyids, p.threshold, p.role_version,
		       (SELECT sha256 FROM metadata WHERE role = p.name AND version = p.role_version),
		       coalesce(f.paths, '{}'), coalesce(f.lengths, '{}'), coalesce(f.sums, '{}'), coalesce(f.customs, '{}'),
		       coalesce(b.sums, '{}'), coalesce(b.sizes, '{}')
		FROM projects p
		LEFT JOIN LATERAL (
			SELECT array_agg(path) AS paths, array_agg(length) AS lengths, array_agg(sha256) AS sums, array_agg(custom::text) AS customs
			FROM release_files WHERE project = p.name
			  AND NOT (p.role_version = $2 AND EXISTS (SELECT FROM metadata WHERE role = p.name AND version = $2 AND sha256 = $3))
		) f ON true
		LEFT JOIN LATERAL (
			SELECT array_agg(sha256) AS sums, array_agg(size) AS sizes FROM blobs WHERE sha256 = ANY($4)
		) b ON true
		WHERE p.name = $1`, project, cachedVersion, cachedSum, blobs).Scan(&d.Name, &keys, &d.KeyIDs, &d.Threshold, &st.CurrentVersion, &roleSum, &paths, &lengths, &sums, &customs, &blobSums, &blobSizes)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil, api.Errorf(api.CodeNotFound, "project %q does not exist: create it first with `cairn project create`", project)
	}
	if err != nil {
		return st, nil, fmt.Errorf("reading project %s: %w", project, err)
	}
	// Shared with other uploads of the project (keyCache): validation only reads them.
	if d.Keys, err = db.keys.decode(keys); err != nil {
		return st, nil, fmt.Errorf("decoding keys of project %s: %w", project, err)
	}
	found := make(map[string]int64, len(blobSums))
	for i, s := range blobSums {
		found[hex.EncodeToString(s)] = blobSizes[i]
	}
	if haveCached && st.CurrentVersion == cachedVersion && roleSum != nil && bytes.Equal(roleSum, cachedSum) {
		st.Files = cached.files
		return st, found, nil
	}
	st.Files = make(map[string]tufrepo.PublishedFile, len(paths))
	for i, p := range paths {
		var c json.RawMessage
		if customs[i] != nil {
			c = json.RawMessage(*customs[i])
		}
		st.Files[p] = tufrepo.PublishedFile{Length: lengths[i], SHA256: hex.EncodeToString(sums[i]), Custom: c}
	}
	if len(roleSum) == 32 {
		e := fileList{version: st.CurrentVersion, files: st.Files}
		copy(e.sha256[:], roleSum)
		db.files.put(project, e)
	}
	return st, found, nil
}

// BlobSizes answers tufrepo.BlobSizes outside a transaction: blob rows are written before
// a PUT answers, and never removed while a release file names them.
func (db *DB) BlobSizes(ctx context.Context) tufrepo.BlobSizes {
	return func(hexes []string) (map[string]int64, error) {
		sums := make([][]byte, 0, len(hexes))
		for _, h := range hexes {
			b, err := hex.DecodeString(h)
			if err != nil {
				return nil, err
			}
			sums = append(sums, b)
		}
		rows, err := db.Pool.Query(ctx, `SELECT sha256, size FROM blobs WHERE sha256 = ANY($1)`, sums)
		if err != nil {
			return nil, err
		}
		out := map[string]int64{}
		var sum []byte
		var size int64
		_, err = pgx.ForEachRow(rows, []any{&sum, &size}, func() error {
			out[hex.EncodeToString(sum)] = size
			return nil
		})
		return out, err
	}
}
