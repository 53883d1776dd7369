package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// ExportOptions select what ExportBundle exports.
type ExportOptions struct {
	// Projects are exported with every release file; All exports every project the
	// snapshot lists instead.
	Projects []string
	All      bool
	// Since makes an incremental bundle for a mirror that imported a bundle of snapshot
	// Since (or later): only projects whose role changed after it, and of those only the
	// files their role at Since did not list. The root chain and the delegating roles
	// are always complete.
	Since int64
	// StagingDir receives the downloaded release files (verified before they are
	// bundled); the caller removes it.
	StagingDir string
	// MaxFiles and MaxBytes bound the release files of one export (0: 1,000,000 files,
	// 1 TiB).
	MaxFiles int
	MaxBytes int64
	// OCIRepos names nested OCI repositories of the exported projects to carry
	// (<project>/<name>): the registry has no catalog, so only each project's own
	// repository <project> is found without being named.
	OCIRepos []string
	// Now is the export time recorded in the bundle (nil: time.Now).
	Now func() time.Time
}

// captureFetcher keeps the bytes of every metadata file the updater downloads, by name.
type captureFetcher struct {
	*recordingFetcher
	prefix string
	got    map[string][]byte
}

func (c *captureFetcher) DownloadFile(u string, maxLength int64, d time.Duration) ([]byte, error) {
	b, err := c.recordingFetcher.DownloadFile(u, maxLength, d)
	if err == nil {
		if name, ok := strings.CutPrefix(u, c.prefix); ok {
			c.got[name] = b
		}
	}
	return b, err
}

func fieldsOfLog() strictjson.Fields { return strictjson.FieldsOf(api.LogEntry{}) }

// strictjsonFieldsOfLog names the fields of an audit-log entry for the strict reading.
func strictjsonFieldsOfLog() strictjson.Fields { return fieldsOfLog() }

// ExportBundle builds a mirror bundle of the server's current state: the whole root
// chain, one timestamp, the snapshot it names, targets and every delegating role on the
// way to the selected projects, their roles, their release files, and the audit-log
// entries of all that metadata (hash chain recomputed over the whole log). Everything is
// downloaded through go-tuf's updater from the pinned root, and the assembled bundle is
// checked by VerifyBundle before it is returned, so an export never writes what an
// air-gapped verifier would refuse.
func (r *Repo) ExportBundle(ctx context.Context, ac *API, opt ExportOptions) (*mirror.Bundle, *BundleVerification, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	if opt.MaxFiles <= 0 {
		opt.MaxFiles = 1_000_000
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 1 << 40
	}
	if !opt.All && len(opt.Projects) == 0 {
		return nil, nil, api.Errorf(api.CodeBadRequest, "nothing to export: name projects with --project, or export every project with --all")
	}
	if opt.All && len(opt.Projects) > 0 {
		return nil, nil, api.Errorf(api.CodeBadRequest, "--all and --project cannot be combined")
	}
	for _, p := range opt.Projects {
		if err := tufrepo.ValidateProjectName(p); err != nil {
			return nil, nil, err
		}
	}
	if opt.StagingDir == "" {
		return nil, nil, errors.New("exporting a bundle: no staging directory")
	}
	exportedAt := now().UTC().Truncate(time.Second)

	// The current metadata, through go-tuf's updater, classic snapshot.
	tmp, err := os.MkdirTemp(opt.StagingDir, "meta-")
	if err != nil {
		return nil, nil, fmt.Errorf("exporting a bundle: %w", err)
	}
	cf := &captureFetcher{recordingFetcher: &recordingFetcher{ctx: ctx, hc: r.cfg.HTTPClient, ua: r.cfg.UserAgent, metadataURL: r.cfg.Server + "/metadata"},
		prefix: r.cfg.Server + "/metadata/", got: map[string][]byte{}}
	cfg, err := config.New(r.cfg.Server+"/metadata", r.cfg.TrustedRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("configuring TUF updater: %w", err)
	}
	cfg.LocalMetadataDir = tmp
	cfg.LocalTargetsDir = filepath.Join(tmp, "targets")
	cfg.RemoteTargetsURL = r.cfg.Server + "/targets"
	cfg.PrefixTargetsWithHash = true
	cfg.Fetcher = cf
	up, err := updater.New(cfg)
	if err != nil {
		return nil, nil, r.tufError(err, "loading the trusted root")
	}
	r.fetch = cf.recordingFetcher
	if err := up.Refresh(); err != nil {
		r.up = up
		defer func() { r.up = nil }()
		return nil, nil, r.tufError(err, "refreshing TUF metadata from "+r.cfg.Server)
	}
	trusted := up.GetTrustedMetadataSet()
	snap := trusted.Snapshot.Signed
	if opt.Since < 0 || opt.Since > snap.Version {
		return nil, nil, api.Errorf(api.CodeBadRequest, "--since %d: the server's snapshot is version %d; give the snapshot version of the bundle the mirror imported last ('cairn mirror verify' prints it)", opt.Since, snap.Version)
	}
	selected := slices.Clone(opt.Projects)
	if opt.All {
		selected = selected[:0]
		for name := range snap.Meta {
			role := strings.TrimSuffix(name, ".json")
			if tufrepo.IsReservedRole(role) {
				continue
			}
			if _, _, shard := tufrepo.ParseShardRole(role); shard {
				continue
			}
			selected = append(selected, role)
		}
	}
	slices.Sort(selected)
	selected = slices.Compact(selected)

	// The audit log, whole, chain recomputed; what changed since opt.Since.
	var entries []api.LogEntry
	if _, err := ac.walkLog(ctx, 500, func(page []api.LogEntry) error {
		entries = append(entries, page...)
		if len(entries) > 10_000_000 {
			return api.Errorf(api.CodeTooMany, "the audit log has more than 10,000,000 entries: export from a server with a shorter log is not supported yet")
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	changed := map[string]bool{}
	atSince := map[string]int64{} // role → version current at opt.Since
	for _, e := range entries {
		if e.Snapshot > opt.Since {
			changed[e.Role] = true
		} else if e.Version > atSince[e.Role] {
			atSince[e.Role] = e.Version
		}
	}

	// Walk to each project's role so that the updater verifies and captures the chain.
	var roles []string
	for _, p := range selected {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if _, err := up.GetTargetInfo(tufrepo.TargetPath(p, "0", probeFile)); err != nil && !isTargetNotFound(err) {
			r.up = up
			verr := r.tufError(err, fmt.Sprintf("loading the role of project %q", p))
			r.up = nil
			return nil, nil, verr
		}
		if _, ok := up.GetTrustedMetadataSet().Targets[p]; !ok {
			return nil, nil, api.Errorf(api.CodeNotFound, "project %q is not in the verified metadata of %s: check the name", p, r.cfg.Server)
		}
		if opt.Since == 0 || changed[p] {
			roles = append(roles, p)
		}
	}
	trusted = up.GetTrustedMetadataSet()

	b := &mirror.Bundle{Info: mirror.Info{Format: mirror.Format, Server: r.cfg.Server, ExportedAt: exportedAt,
		RootVersion: trusted.Root.Signed.Version, TimestampVersion: trusted.Timestamp.Signed.Version, SnapshotVersion: snap.Version,
		All: opt.All, Projects: selected, Since: opt.Since}}
	if opt.All {
		b.Info.Projects = []string{}
	}
	// The whole root chain, from 1: the updater fetched only those after the pinned root.
	for v := int64(1); v <= trusted.Root.Signed.Version; v++ {
		name := tufrepo.VersionedName(tufrepo.RoleRoot, v)
		raw, err := cf.DownloadFile(r.cfg.Server+"/metadata/"+name, rootMaxLength, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("exporting root version %d: %w", v, err)
		}
		b.Files = append(b.Files, mirror.BytesFile("metadata/"+name, mirror.MediaTypeMetadata, raw))
	}
	b.Files = append(b.Files, mirror.BytesFile("metadata/timestamp.json", mirror.MediaTypeMetadata, cf.got["timestamp.json"]))
	snapName := tufrepo.VersionedName(tufrepo.RoleSnapshot, snap.Version)
	b.Files = append(b.Files, mirror.BytesFile("metadata/"+snapName, mirror.MediaTypeMetadata, cf.got[snapName]))
	keep := map[string]bool{tufrepo.RoleTargets: true}
	for _, p := range roles {
		keep[p] = true
	}
	for role := range trusted.Targets {
		if tufrepo.IsReservedRole(role) {
			keep[role] = true
		} else if _, _, shard := tufrepo.ParseShardRole(role); shard {
			keep[role] = true
		}
	}
	for role := range keep {
		m := snap.Meta[tufrepo.MetaName(role)]
		if m == nil {
			continue
		}
		name := tufrepo.VersionedName(role, m.Version)
		raw, ok := cf.got[name]
		if !ok {
			return nil, nil, fmt.Errorf("exporting %s: the updater verified it but its bytes were not captured", name)
		}
		b.Files = append(b.Files, mirror.BytesFile("metadata/"+name, mirror.MediaTypeMetadata, raw))
	}

	// Merkle proofs (DESIGN.md "Merkle snapshot") of targets, the delegators and every
	// selected project (an unchanged project's proof changes with every timestamp), so a
	// mirror answers 'cairn get' as the registry does. Checked by VerifyBundle below.
	if _, ok := trusted.Timestamp.Signed.UnrecognizedFields[merkle.FieldName]; ok {
		proofRoles := []string{tufrepo.RoleTargets}
		for role := range trusted.Targets {
			if _, _, shard := tufrepo.ParseShardRole(role); shard {
				proofRoles = append(proofRoles, role)
			}
		}
		proofRoles = append(proofRoles, selected...)
		ts := trusted.Timestamp.Signed.Version
		for _, role := range proofRoles {
			raw, err := cf.recordingFetcher.get(ctx, fmt.Sprintf("%s/api/v1/merkle/%d/%s", r.cfg.Server, ts, role), maxProofBytes)
			if err != nil {
				return nil, nil, fmt.Errorf("exporting the Merkle proof of %s: %w", role, err)
			}
			b.Files = append(b.Files, mirror.BytesFile(fmt.Sprintf("merkle/%d/%s.json", ts, role), mirror.MediaTypeMerkleProof, raw))
		}
	}

	// Release files of the exported roles: all of them, or for an incremental bundle
	// those the role at Since did not list.
	var nfiles int
	var nbytes int64
	for _, p := range roles {
		md := trusted.Targets[p]
		old := map[string]bool{}
		if opt.Since > 0 && atSince[p] > 0 {
			// Only to leave out files the mirror holds: a wrong answer here makes the
			// import refuse the bundle (a file missing), never accept a bad one.
			raw, err := cf.recordingFetcher.DownloadFile(r.cfg.Server+"/metadata/"+tufrepo.VersionedName(p, atSince[p]), tufrepo.MaxProjectRoleBytes, 0)
			if err != nil {
				return nil, nil, fmt.Errorf("reading role %s version %d, current at snapshot %d: %w", p, atSince[p], opt.Since, err)
			}
			if om, err := metadata.Targets().FromBytes(raw); err == nil {
				for tp := range om.Signed.Targets {
					old[tp] = true
				}
			}
		}
		paths := make([]string, 0, len(md.Signed.Targets))
		for tp := range md.Signed.Targets {
			if !old[tp] {
				paths = append(paths, tp)
			}
		}
		slices.Sort(paths)
		for _, tp := range paths {
			tf := md.Signed.Targets[tp]
			nfiles++
			nbytes += tf.Length
			if nfiles > opt.MaxFiles || nbytes > opt.MaxBytes {
				return nil, nil, api.Errorf(api.CodeTooLarge, "the export would hold more than %d release files or %d bytes: select fewer projects, or raise --max-files / --max-bundle-size", opt.MaxFiles, opt.MaxBytes)
			}
			f, err := r.stageTarget(ctx, p, tp, tf, opt.StagingDir)
			if err != nil {
				return nil, nil, err
			}
			b.Files = append(b.Files, f)
		}
	}

	// Attestations of the exported release files, with the index roles that list their
	// indexes (and those roles' Merkle proofs, so a mirror's Merkle refresh finds them).
	// Every file of every selected project, not only those an incremental bundle carries:
	// attestations arrive without a role change.
	var shas []string
	for _, p := range selected {
		if md := trusted.Targets[p]; md != nil {
			for _, tf := range md.Signed.Targets {
				shas = append(shas, hex.EncodeToString(tf.Hashes["sha256"]))
			}
		}
	}
	afiles, aroles, err := r.exportAttestations(ctx, ac, up, shas, opt.StagingDir, opt.MaxFiles)
	if err != nil {
		return nil, nil, err
	}
	b.Files = append(b.Files, afiles...)
	for _, role := range aroles {
		m := snap.Meta[tufrepo.MetaName(role)]
		if m == nil {
			return nil, nil, fmt.Errorf("exporting %s: the verified snapshot does not list it", role)
		}
		name := tufrepo.VersionedName(role, m.Version)
		raw, ok := cf.got[name]
		if !ok {
			return nil, nil, fmt.Errorf("exporting %s: the updater verified it but its bytes were not captured", name)
		}
		b.Files = append(b.Files, mirror.BytesFile("metadata/"+name, mirror.MediaTypeMetadata, raw))
		if _, ok := trusted.Timestamp.Signed.UnrecognizedFields[merkle.FieldName]; ok {
			ts := trusted.Timestamp.Signed.Version
			praw, err := cf.recordingFetcher.get(ctx, fmt.Sprintf("%s/api/v1/merkle/%d/%s", r.cfg.Server, ts, role), maxProofBytes)
			if err != nil {
				return nil, nil, fmt.Errorf("exporting the Merkle proof of %s: %w", role, err)
			}
			b.Files = append(b.Files, mirror.BytesFile(fmt.Sprintf("merkle/%d/%s.json", ts, role), mirror.MediaTypeMerkleProof, praw))
		}
	}

	// OCI artifacts of the exported projects: their repositories' tags, manifests,
	// referrers and blobs, as /v2/ serves them.
	ox := &ociExport{r: r, ctx: ctx, staging: opt.StagingDir, maxItems: opt.MaxFiles, maxBytes: opt.MaxBytes - nbytes, blobs: map[string]string{}, done: map[string]bool{}}
	ociRepos := slices.Clone(roles)
	for _, name := range opt.OCIRepos {
		project, _, nested := strings.Cut(name, "/")
		if !nested {
			return nil, nil, api.Errorf(api.CodeBadRequest, "--oci-repo %.120q: name a nested repository <project>/<name>; each exported project's own repository is carried anyway", name)
		}
		if !slices.Contains(roles, project) {
			return nil, nil, api.Errorf(api.CodeBadRequest, "--oci-repo %.120q: project %s is not exported by this bundle (select it with --project)", name, project)
		}
		ociRepos = append(ociRepos, name)
	}
	slices.Sort(ociRepos)
	for _, name := range slices.Compact(ociRepos) {
		if err := ox.repo(name); err != nil {
			return nil, nil, err
		}
	}
	b.Files = append(b.Files, ox.files...)

	// The transparency-log entries of the online-signed versions in the bundle, as far as
	// the server has logged them (a log submission may lag a publish; a server without a
	// log has none).
	for _, f := range slices.Clone(b.Files) {
		if f.MediaType != mirror.MediaTypeMetadata {
			continue
		}
		role, v, _ := mirror.MetadataName(f.Path[len("metadata/"):])
		if role == tufrepo.RoleTimestamp {
			v = trusted.Timestamp.Signed.Version
		}
		if !audited(role) {
			continue
		}
		e, err := ac.TransparencyLogEntry(ctx, role, v)
		if c := api.CodeOf(err); c == api.CodeNotLogged || c == api.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding a transparency-log entry: %w", err)
		}
		b.Files = append(b.Files, mirror.BytesFile(fmt.Sprintf("tlog/%s/%d.json", role, v), mirror.MediaTypeTlogEntry, raw))
	}

	// The audit-log entries of the bundle's metadata.
	type key struct {
		role    string
		version int64
	}
	want := map[key]bool{}
	for _, f := range b.Files {
		if f.MediaType != mirror.MediaTypeMetadata {
			continue
		}
		role, v, _ := mirror.MetadataName(f.Path[len("metadata/"):])
		if role == tufrepo.RoleTimestamp {
			v = trusted.Timestamp.Signed.Version
		}
		want[key{role, v}] = true
	}
	var logged []api.LogEntry
	for _, e := range entries {
		if want[key{e.Role, e.Version}] {
			logged = append(logged, e)
		}
	}
	lraw, err := json.Marshal(logged)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the audit-log entries: %w", err)
	}
	b.Files = append(b.Files, mirror.BytesFile(mirror.AuditLogPath, mirror.MediaTypeAuditLog, lraw))
	slices.SortFunc(b.Files, func(x, y mirror.File) int { return strings.Compare(x.Path, y.Path) })

	// Verify the bundle as the air-gapped site will, before anyone writes it.
	res, err := VerifyBundle(b, r.cfg.TrustedRoot, BundleVerifyOptions{Now: func() time.Time { return exportedAt }})
	if err != nil {
		return nil, nil, fmt.Errorf("the assembled bundle does not verify, nothing was written: %w", err)
	}
	return b, res, nil
}

// stageTarget downloads one release file into dir, checking its length and sha256 against
// the verified role as it streams, and returns it as a bundle file.
func (r *Repo) stageTarget(ctx context.Context, project, tp string, tf *metadata.TargetFiles, dir string) (mirror.File, error) {
	version, file, err := tufrepo.SplitTargetPath(project, tp)
	if err != nil {
		return mirror.File{}, err
	}
	sum := hex.EncodeToString(tf.Hashes["sha256"])
	if len(sum) != 64 {
		return mirror.File{}, &VerifyError{Code: ExitMalformed, Role: project, Target: tp, Detail: "the signed role lists no sha256 for it"}
	}
	u := r.cfg.Server + "/targets/" + project + "/" + version + "/" + sum + "." + file
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return mirror.File{}, err
	}
	req.Header.Set("User-Agent", r.cfg.UserAgent)
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return mirror.File{}, fmt.Errorf("downloading %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return mirror.File{}, fmt.Errorf("downloading %s: HTTP %d", u, resp.StatusCode)
	}
	local := filepath.Join(dir, sum)
	f, err := os.OpenFile(local, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return mirror.File{}, fmt.Errorf("staging %s: %w", tp, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, tf.Length+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return mirror.File{}, fmt.Errorf("downloading %s: %w", u, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != tf.Length || got != sum {
		return mirror.File{}, &VerifyError{Code: ExitHashMismatch, Role: project, Target: tp, Detail: fmt.Sprintf("the server sent %s bytes with sha256 %s; the signed role lists %d bytes with sha256 %s", lengthText(n, tf.Length), got, tf.Length, sum)}
	}
	return mirror.OpenerFile("targets/"+project+"/"+version+"/"+sum+"."+file, mirror.MediaTypeTarget, n, sum,
		func() (io.ReadCloser, error) { return os.Open(local) }), nil
}
