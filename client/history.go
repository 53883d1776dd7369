package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Limits of the history reader. The audit log of a large registry is long: the reader keeps
// only the entries of the roles on a project's path, and stops with a clear error past
// MaxHistoryEntries rather than paging for ever.
const (
	MaxHistoryEntries = 2_000_000
	historyPage       = 1000
	// maxHistoryDepth bounds the delegation walk (targets → tree → shards → project).
	maxHistoryDepth = 8
	// maxRoleFile bounds one role version fetched from history; it is go-tuf's default for
	// targets roles.
	maxRoleFile = 5_000_000
)

// History verifies past versions of a project's role and of root, which the TUF updater
// cannot: it only ever verifies the newest versions. It is built from two things:
//
//   - the root chain, every root version from the pinned one to the current one, each
//     verified by the threshold of its predecessor's root keys and its own (TUF §5.3), as a
//     client does on update;
//   - the server's hash-chained audit log, which records, for every published version of
//     every role, its length, sha256 and the snapshot that published it.
//
// A past project role version N is verified by rebuilding the delegation path as it stood
// in the snapshot that published N: the root, targets and delegating roles current in that
// snapshot (per the log) are downloaded from their immutable consistent-snapshot URLs,
// checked against the length and hash the log gives, and each verified by the keys its
// parent delegates to it (root by the verified chain); N must then carry a threshold of
// signatures by the maintainer keys delegated to the project at that point. Expiry is not
// checked (past versions have expired by design). What the log contributes is only which
// version was current when: a server that rewrites its log could point at another signed
// version, never make unsigned bytes verify; the log's hash chain is recomputed while
// reading.
type History struct {
	repo    *Repo
	project string
	// entries holds, by role, the log entries of published versions, in log order.
	entries map[string][]api.LogEntry
	// roots is the verified root chain by version; pinned is the oldest one in it.
	roots  map[int64]*metadata.Metadata[metadata.RootType]
	pinned int64
	// LogEntries is how many audit log entries were read; LogHead the hash of the last.
	LogEntries int
	LogHead    string
}

// HistoricalRole is a past (or the current) version of a project role with the
// delegation that was in force when it was published, verified as History describes.
type HistoricalRole struct {
	Version  int64 `json:"version"`
	Snapshot int64 `json:"snapshot"` // the snapshot that published it
	// RootVersion is the root that the delegation path was verified from.
	RootVersion int64     `json:"root_version"`
	Delegator   string    `json:"delegator"`
	Expires     time.Time `json:"expires"`
	Threshold   int       `json:"threshold"`
	// Keys are the maintainer keys delegated at that point, and whether each signed.
	Keys         []KeySignature `json:"keys"`
	Signatures   int            `json:"valid_signatures"`
	ThresholdMet bool           `json:"threshold_met"`
	// Verified says how: "tuf-updater" for the current version, "history" for a past one.
	Verified string `json:"verified"`

	Metadata *metadata.Metadata[metadata.TargetsType] `json:"-"`
	set      MaintainerSet
}

// Maintainers is the delegation in force for this version.
func (h *HistoricalRole) Maintainers() MaintainerSet { return h.set }

// CurrentHistorical describes the TUF-verified current role pr in the form of a
// HistoricalRole.
func CurrentHistorical(pr *ProjectRole) *HistoricalRole {
	h := &HistoricalRole{Version: pr.Version(), Snapshot: pr.SnapshotVersion, Delegator: pr.Delegator, Expires: pr.Metadata.Signed.Expires.UTC(),
		Threshold: pr.Threshold, Verified: "tuf-updater", Metadata: pr.Metadata, set: MaintainersOf(pr)}
	link := ChainLink{Threshold: pr.Threshold}
	fillSignatures(&link, pr.Name, pr.Metadata, pr.Metadata.Signatures, pr.Keys, pr.KeyIDs)
	h.Keys, h.Signatures, h.ThresholdMet = link.Keys, link.Signatures, link.ThresholdMet
	return h
}

// historyRole reports whether the history of project needs the entries of role: the
// top-level roles on the path and every node of the two delegation trees.
func historyRole(project, role string) bool {
	switch role {
	case project, tufrepo.RoleRoot, tufrepo.RoleTargets:
		return true
	}
	tree, _, _ := tufrepo.ParseShardRole(role)
	return tree == tufrepo.RoleClaimed || tree == tufrepo.RoleRecentlyClaimed
}

// LoadHistory refreshes the TUF metadata, verifies the root chain from the pinned root and
// reads the audit log (recomputing its hash chain), keeping what project's history needs.
// project may be empty for the root chain alone.
func (r *Repo) LoadHistory(ctx context.Context, a *API, project string) (*History, error) {
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	h := &History{repo: r, project: project, entries: map[string][]api.LogEntry{}, roots: map[int64]*metadata.Metadata[metadata.RootType]{}}
	if err := h.loadRoots(ctx); err != nil {
		return nil, err
	}
	if a == nil {
		return h, nil
	}
	prev, err := a.walkLog(ctx, historyPage, func(page []api.LogEntry) error {
		for _, e := range page {
			if historyRole(project, e.Role) {
				h.entries[e.Role] = append(h.entries[e.Role], e)
			}
		}
		h.LogEntries += len(page)
		if h.LogEntries > MaxHistoryEntries {
			return api.Errorf(api.CodeTooMany, "the audit log of %s has more than %d entries, more than this client reads to rebuild history", r.cfg.Server, MaxHistoryEntries)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.LogHead = hex.EncodeToString(prev)
	return h, nil
}

// loadRoots downloads and verifies every root from the pinned one to the one the refresh
// trusts.
func (h *History) loadRoots(ctx context.Context) error {
	r := h.repo
	pinned, err := metadata.Root().FromBytes(r.cfg.TrustedRoot)
	if err != nil {
		return &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the pinned root does not parse", Err: err}
	}
	current := r.up.GetTrustedMetadataSet().Root
	h.pinned = pinned.Signed.Version
	h.roots[h.pinned] = pinned
	prev := pinned
	for v := h.pinned + 1; v <= current.Signed.Version; v++ {
		raw, err := h.fetch(ctx, strconv.FormatInt(v, 10)+".root.json", maxMetadataFile)
		if err != nil {
			return err
		}
		next, err := metadata.Root().FromBytes(raw)
		if err != nil {
			return &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d does not parse", v), Err: err}
		}
		if next.Signed.Version != v {
			return &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("%d.root.json holds root version %d", v, next.Signed.Version)}
		}
		if err := prev.VerifyDelegate(tufrepo.RoleRoot, next); err != nil {
			return &VerifyError{Code: ExitSignatureInvalid, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d is not signed by a threshold of root version %d's root keys", v, v-1), Err: err}
		}
		if err := next.VerifyDelegate(tufrepo.RoleRoot, next); err != nil {
			return &VerifyError{Code: ExitSignatureInvalid, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d is not signed by a threshold of its own root keys", v), Err: err}
		}
		h.roots[v] = next
		prev = next
	}
	return nil
}

// Root returns root version v from the verified chain. Versions before the pinned root
// cannot be verified from it and are refused.
func (h *History) Root(v int64) (*metadata.Metadata[metadata.RootType], error) {
	if md, ok := h.roots[v]; ok {
		return md, nil
	}
	if v < h.pinned {
		return nil, api.Errorf(api.CodeBadRequest, "root version %d is older than the pinned root (version %d): it cannot be verified from your trust anchor; compare versions %d to %d", v, h.pinned, h.pinned, h.CurrentRoot())
	}
	return nil, api.Errorf(api.CodeNotFound, "root version %d does not exist: the current root of %s is version %d", v, h.repo.cfg.Server, h.CurrentRoot())
}

// PinnedRoot and CurrentRoot are the ends of the verified root chain.
func (h *History) PinnedRoot() int64 { return h.pinned }

// CurrentRoot is the newest verified root version.
func (h *History) CurrentRoot() int64 { return h.pinned + int64(len(h.roots)) - 1 }

func (h *History) fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	r := h.repo
	r.fetch.ctx = ctx
	body, err := r.fetch.get(ctx, r.cfg.Server+"/metadata/"+name, max)
	if err != nil {
		return nil, fmt.Errorf("downloading %s from %s: %w", name, r.cfg.Server, err)
	}
	if cerr := tufrepo.CheckJSON(body, name); cerr != nil {
		return nil, &VerifyError{Code: ExitMalformed, Detail: api.ProblemFor(cerr).Detail, Err: cerr}
	}
	return body, nil
}

// entryAt is the newest version of role published in snapshot s or before it.
func (h *History) entryAt(role string, s int64) (api.LogEntry, bool) {
	var best api.LogEntry
	found := false
	for _, e := range h.entries[role] {
		if e.Snapshot <= s && (!found || e.Version > best.Version) {
			best, found = e, true
		}
	}
	return best, found
}

// fetchLogged downloads the version of role that entry e names and checks it against the
// length and sha256 the log gives.
func (h *History) fetchLogged(ctx context.Context, e api.LogEntry) ([]byte, error) {
	raw, err := h.fetch(ctx, fmt.Sprintf("%d.%s.json", e.Version, e.Role), maxRoleFile)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	if int64(len(raw)) != e.Length || hex.EncodeToString(sum[:]) != e.SHA256 {
		return nil, &VerifyError{Code: ExitHashMismatch, Role: e.Role, Detail: fmt.Sprintf("version %d served by %s is %d bytes with sha256 %s; the audit log (entry %d) records %d bytes with sha256 %s",
			e.Version, h.repo.cfg.Server, len(raw), hex.EncodeToString(sum[:]), e.Seq, e.Length, e.SHA256)}
	}
	return raw, nil
}

// RoleVersions lists the published versions of the project role, per the log, ascending.
func (h *History) RoleVersions() []int64 {
	var out []int64
	for _, e := range h.entries[h.project] {
		if !slices.Contains(out, e.Version) {
			out = append(out, e.Version)
		}
	}
	slices.Sort(out)
	return out
}

// ProjectRoleAt verifies version v of the project role as History describes. A version
// the log does not record is CodeNotFound.
func (h *History) ProjectRoleAt(ctx context.Context, v int64) (*HistoricalRole, error) {
	project := h.project
	var pe api.LogEntry
	found := false
	for _, e := range h.entries[project] {
		if e.Version == v {
			pe, found = e, true
			break
		}
	}
	if !found {
		vs := h.RoleVersions()
		last := int64(0)
		if len(vs) > 0 {
			last = vs[len(vs)-1]
		}
		return nil, api.Errorf(api.CodeNotFound, "project %s has no published role version %d (its published versions are 1 to %d)", project, v, last)
	}
	s := pe.Snapshot
	rootE, ok := h.entryAt(tufrepo.RoleRoot, s)
	rv := h.pinned
	if ok && rootE.Version > rv {
		rv = rootE.Version
	}
	// A snapshot older than the pinned root is checked against the pinned root's keys.
	root, err := h.Root(rv)
	if err != nil {
		return nil, err
	}
	te, ok := h.entryAt(tufrepo.RoleTargets, s)
	if !ok {
		return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleTargets, Detail: fmt.Sprintf("the audit log records no targets version published by snapshot %d", s)}
	}
	tmd, err := h.verifiedTargets(ctx, te, func(md *metadata.Metadata[metadata.TargetsType]) error {
		return root.VerifyDelegate(tufrepo.RoleTargets, md)
	})
	if err != nil {
		return nil, err
	}
	raw, err := h.fetchLogged(ctx, pe)
	if err != nil {
		return nil, err
	}
	pm, err := tufrepo.ParseTargetsStrict(raw, fmt.Sprintf("version %d of the role of %s", v, project))
	if err != nil {
		return nil, err
	}
	md := pm.MD
	if md.Signed.Version != v {
		return nil, &VerifyError{Code: ExitPolicy, Role: project, Detail: fmt.Sprintf("%d.%s.json holds version %d", v, project, md.Signed.Version)}
	}
	parent, name, err := h.findDelegator(ctx, tufrepo.RoleTargets, tmd, s, 0)
	if err != nil {
		return nil, err
	}
	if parent == nil {
		return nil, &VerifyError{Code: ExitKeyNotTrusted, Role: project, Detail: fmt.Sprintf("no role in snapshot %d delegates to project %s", s, project)}
	}
	var d metadata.DelegatedRole
	for _, r := range parent.Signed.Delegations.Roles {
		if r.Name == project {
			d = r
		}
	}
	if err := parent.VerifyDelegate(project, md); err != nil {
		return nil, &VerifyError{Code: ExitSignatureInvalid, Role: project, Detail: fmt.Sprintf("role version %d is not signed by %d of the maintainer keys %s delegated to it in snapshot %d", v, d.Threshold, name, s), Err: err}
	}
	hr := &HistoricalRole{Version: v, Snapshot: s, RootVersion: rv, Delegator: name, Expires: md.Signed.Expires.UTC(), Threshold: d.Threshold,
		Verified: "history", Metadata: md, set: delegatedSet(d.KeyIDs, d.Threshold, parent.Signed.Delegations.Keys)}
	link := ChainLink{Threshold: d.Threshold}
	fillSignatures(&link, project, md, md.Signatures, parent.Signed.Delegations.Keys, d.KeyIDs)
	hr.Keys, hr.Signatures, hr.ThresholdMet = link.Keys, link.Signatures, link.ThresholdMet
	return hr, nil
}

func (h *History) verifiedTargets(ctx context.Context, e api.LogEntry, verify func(*metadata.Metadata[metadata.TargetsType]) error) (*metadata.Metadata[metadata.TargetsType], error) {
	raw, err := h.fetchLogged(ctx, e)
	if err != nil {
		return nil, err
	}
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: e.Role, Detail: fmt.Sprintf("version %d does not parse", e.Version), Err: err}
	}
	if md.Signed.Version != e.Version {
		return nil, &VerifyError{Code: ExitPolicy, Role: e.Role, Detail: fmt.Sprintf("%d.%s.json holds version %d", e.Version, e.Role, md.Signed.Version)}
	}
	if err := verify(md); err != nil {
		return nil, &VerifyError{Code: ExitSignatureInvalid, Role: e.Role, Detail: fmt.Sprintf("version %d is not signed by the keys its delegator names", e.Version), Err: err}
	}
	return md, nil
}

// findDelegator walks the delegations of md (role name) as a TUF client does (§5.6.7,
// pre-order, terminating delegations stop the walk) and returns the verified role that
// delegates to the project, as it stood in snapshot s.
func (h *History) findDelegator(ctx context.Context, name string, md *metadata.Metadata[metadata.TargetsType], s int64, depth int) (*metadata.Metadata[metadata.TargetsType], string, error) {
	if md.Signed.Delegations == nil || depth > maxHistoryDepth {
		return nil, "", nil
	}
	probe := tufrepo.TargetPath(h.project, "0", probeFile)
	for _, d := range md.Signed.Delegations.Roles {
		if ok, err := d.IsDelegatedPath(probe); err != nil || !ok {
			continue
		}
		if d.Name == h.project {
			return md, name, nil
		}
		e, ok := h.entryAt(d.Name, s)
		if !ok {
			if d.Terminating {
				return nil, "", nil
			}
			continue
		}
		child, err := h.verifiedTargets(ctx, e, func(c *metadata.Metadata[metadata.TargetsType]) error { return md.VerifyDelegate(d.Name, c) })
		if err != nil {
			return nil, "", err
		}
		if p, n, err := h.findDelegator(ctx, d.Name, child, s, depth+1); err != nil || p != nil {
			return p, n, err
		}
		if d.Terminating {
			return nil, "", nil
		}
	}
	return nil, "", nil
}
