package client

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// AttestationsNone is what a diff of role versions says of attestations: they are
// committed per file as of the current snapshot, not per role version, so two role
// versions are not compared (a diff of releases summarises each side's with
// ReleaseAttestations); 'cairn attestations NAME@VERSION' verifies and shows a release's.
const AttestationsNone = "not compared for role versions: run 'cairn attestations NAME@VERSION'"

// FileDiff is how the files of two sides differ, by file name (releases) or path (role
// versions).
type FileDiff struct {
	Added   []api.File    `json:"added"`
	Removed []api.File    `json:"removed"`
	Changed []ChangedFile `json:"changed"`
	Same    int           `json:"unchanged"`
}

// YankState is the yank flag of one release on one side.
type YankState struct {
	Release string `json:"release"`
	Side    string `json:"side"` // "from" or "to"
	Yanked  bool   `json:"yanked"`
	Reason  string `json:"reason,omitempty"`
}

// Diff is what 'cairn diff' shows: two verified sides of a project and what changed
// between them. For releases, From and To are the role versions that first published
// each release; for role versions, the two versions asked for.
type Diff struct {
	Server  string `json:"server"`
	Project string `json:"project"`
	// Mode is "releases" or "role-versions".
	Mode        string          `json:"mode"`
	FromRelease string          `json:"from_release,omitempty"`
	ToRelease   string          `json:"to_release,omitempty"`
	From        *HistoricalRole `json:"from"`
	To          *HistoricalRole `json:"to"`
	Files       FileDiff        `json:"files"`
	// Maintainers compares the delegation in force at From with the one at To.
	Maintainers MaintainerDiff `json:"maintainers"`
	// Yanks: for role versions, the releases yanked, unyanked or re-reasoned between the
	// two; for releases, each release's flag as published and as it is now.
	Yanked        []YankChange `json:"yanked"`
	Unyanked      []YankChange `json:"unyanked"`
	ReasonChanged []YankChange `json:"yank_reason_changed"`
	YankStates    []YankState  `json:"yank_states,omitempty"`
	Attestations  struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"attestations"`
	// Verification says in words how each side was verified.
	Verification string `json:"verification"`
}

const verificationText = "The current role version is verified by the TUF updater from the pinned root. A past version is verified against the delegation in force in the snapshot that published it: the root chain from the pinned root, then targets and every delegating role current in that snapshot (per the server's hash-chained audit log, whose chain is recomputed, and checked against the lengths and hashes it records), each verified by its parent's keys, and the role by a threshold of the maintainer keys delegated to it then. Expiry is not checked for past versions."

func (h *History) side(ctx context.Context, pr *ProjectRole, v int64) (*HistoricalRole, error) {
	if v == pr.Version() {
		return CurrentHistorical(pr), nil
	}
	if v > pr.Version() {
		return nil, api.Errorf(api.CodeNotFound, "project %s has no role version %d: the current verified version is %d", pr.Name, v, pr.Version())
	}
	return h.ProjectRoleAt(ctx, v)
}

// DiffRoleVersions compares role versions from < to of the project, both verified.
func (h *History) DiffRoleVersions(ctx context.Context, pr *ProjectRole, from, to int64) (*Diff, error) {
	if from < 1 || to < 1 {
		return nil, api.Errorf(api.CodeBadRequest, "role versions start at 1, not %d", min(from, to))
	}
	if from >= to {
		return nil, api.Errorf(api.CodeBadRequest, "role versions in the wrong order: %d is not older than %d; give the older version first (cairn diff %s --role-versions %d %d)", from, to, pr.Name, min(from, to), max(from, to))
	}
	a, err := h.side(ctx, pr, from)
	if err != nil {
		return nil, err
	}
	b, err := h.side(ctx, pr, to)
	if err != nil {
		return nil, err
	}
	d := h.newDiff(pr, "role-versions", a, b)
	ch := DiffRoles(pr.Name, a.Metadata, b.Metadata)
	for _, r := range ch.Added {
		for _, f := range r.Files {
			d.Files.Added = append(d.Files.Added, f)
		}
	}
	d.Files.Removed = append(d.Files.Removed, ch.Removed...)
	d.Files.Changed = append(d.Files.Changed, ch.Modified...)
	d.Files.Same = len(b.Metadata.Signed.Targets) - len(d.Files.Added) - len(d.Files.Changed)
	d.Yanked, d.Unyanked, d.ReasonChanged = nonNil(ch.Yanked), nonNil(ch.Unyanked), nonNil(ch.ReasonChanged)
	return d, nil
}

// DiffReleases compares release fromRel with the newer release toRel of the project. Each
// side is the role version that first published the release, verified as History says;
// that it is the first is proven by verifying the version before it, which lacks it.
func (h *History) DiffReleases(ctx context.Context, pr *ProjectRole, fromRel, toRel string) (*Diff, error) {
	rels := pr.Releases()
	ra, ok := FindRelease(rels, fromRel)
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "project %s has no release %q in its verified metadata; releases: %s", pr.Name, fromRel, versionList(rels))
	}
	rb, ok := FindRelease(rels, toRel)
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "project %s has no release %q in its verified metadata; releases: %s", pr.Name, toRel, versionList(rels))
	}
	if c := CompareVersions(fromRel, toRel); c >= 0 {
		if c == 0 {
			return nil, api.Errorf(api.CodeBadRequest, "both sides are release %s: name two different releases", fromRel)
		}
		return nil, api.Errorf(api.CodeBadRequest, "releases in the wrong order: %s is newer than %s; give the older release first (cairn diff %s %s %s)", fromRel, toRel, pr.Name, toRel, fromRel)
	}
	a, err := h.introducedIn(ctx, pr, ra)
	if err != nil {
		return nil, err
	}
	b, err := h.introducedIn(ctx, pr, rb)
	if err != nil {
		return nil, err
	}
	d := h.newDiff(pr, "releases", a, b)
	d.FromRelease, d.ToRelease = fromRel, toRel
	byName := map[string]api.File{}
	for _, f := range ra.Files {
		byName[f.Name] = f
	}
	for _, f := range rb.Files {
		old, ok := byName[f.Name]
		switch {
		case !ok:
			d.Files.Added = append(d.Files.Added, f)
		case old.SHA256 != f.SHA256 || old.Length != f.Length:
			d.Files.Changed = append(d.Files.Changed, ChangedFile{Path: f.Name, Before: old, After: f})
		default:
			d.Files.Same++
		}
		delete(byName, f.Name)
	}
	for _, f := range ra.Files {
		if _, gone := byName[f.Name]; gone {
			d.Files.Removed = append(d.Files.Removed, f)
		}
	}
	d.Yanked, d.Unyanked, d.ReasonChanged = []YankChange{}, []YankChange{}, []YankChange{}
	for _, s := range []struct {
		rel  Release
		side string
		at   *HistoricalRole
	}{{ra, "from", a}, {rb, "to", b}} {
		then, _ := FindRelease(ReleasesFromRole(pr.Name, s.at.Metadata), s.rel.Version)
		d.YankStates = append(d.YankStates,
			YankState{Release: s.rel.Version, Side: s.side + fmt.Sprintf(" (role version %d)", s.at.Version), Yanked: then.Yanked, Reason: then.YankReason},
			YankState{Release: s.rel.Version, Side: fmt.Sprintf("now (role version %d)", pr.Version()), Yanked: s.rel.Yanked, Reason: s.rel.YankReason})
	}
	return d, nil
}

func (h *History) newDiff(pr *ProjectRole, mode string, a, b *HistoricalRole) *Diff {
	d := &Diff{Server: h.repo.cfg.Server, Project: pr.Name, Mode: mode, From: a, To: b, Verification: verificationText,
		Files:       FileDiff{Added: []api.File{}, Removed: []api.File{}, Changed: []ChangedFile{}},
		Maintainers: DiffMaintainers(pr.Name, 0, a.set, b.set)}
	d.Attestations.From, d.Attestations.To = AttestationsNone, AttestationsNone
	return d
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// introducedIn finds, by bisection over the published role versions (files are immutable
// and never removed, so a release once listed stays listed), the first version listing any
// file of rel, and verifies it and the version before it.
func (h *History) introducedIn(ctx context.Context, pr *ProjectRole, rel Release) (*HistoricalRole, error) {
	has := func(md *metadata.Metadata[metadata.TargetsType]) bool {
		for _, f := range rel.Files {
			if md.Signed.Targets[f.Path] != nil {
				return true
			}
		}
		return false
	}
	lo, hi := int64(1), pr.Version() // hi lists it (the current verified role)
	for lo < hi {
		mid := lo + (hi-lo)/2
		ok, err := h.unverifiedHas(ctx, mid, has)
		if err != nil {
			return nil, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	side, err := h.side(ctx, pr, hi)
	if err != nil {
		return nil, err
	}
	if !has(side.Metadata) {
		return nil, &VerifyError{Code: ExitPolicy, Role: pr.Name, Detail: fmt.Sprintf("verified role version %d does not list release %s, although the server's copy did", hi, rel.Version)}
	}
	if hi > 1 {
		before, err := h.side(ctx, pr, hi-1)
		if err != nil {
			return nil, err
		}
		if has(before.Metadata) {
			return nil, &VerifyError{Code: ExitPolicy, Role: pr.Name, Detail: fmt.Sprintf("verified role version %d already lists release %s, although the server's copy did not", hi-1, rel.Version)}
		}
	}
	return side, nil
}

// unverifiedHas is a bisection probe: the logged bytes of version v (hash-checked against
// the log, signatures not checked; only the version found is then verified).
func (h *History) unverifiedHas(ctx context.Context, v int64, has func(*metadata.Metadata[metadata.TargetsType]) bool) (bool, error) {
	for _, e := range h.entries[h.project] {
		if e.Version != v {
			continue
		}
		raw, err := h.fetchLogged(ctx, e)
		if err != nil {
			return false, err
		}
		md, err := metadata.Targets().FromBytes(raw)
		if err != nil {
			return false, &VerifyError{Code: ExitMalformed, Role: h.project, Detail: fmt.Sprintf("version %d does not parse", v), Err: err}
		}
		return has(md), nil
	}
	return false, api.Errorf(api.CodeNotFound, "the audit log of %s records no version %d of project %s", h.repo.cfg.Server, v, h.project)
}

// RootSide is one verified root version.
type RootSide struct {
	Version            int64     `json:"version"`
	Expires            time.Time `json:"expires"`
	ConsistentSnapshot bool      `json:"consistent_snapshot"`
	// SignedBy are the key IDs whose signatures over this version verify, among the root
	// keys of this version and of the one before it.
	SignedBy []string `json:"signed_by"`
}

// RootDiff compares two root versions of the verified chain.
type RootDiff struct {
	Server       string           `json:"server"`
	Pinned       int64            `json:"pinned_version"`
	Current      int64            `json:"current_version"`
	From         RootSide         `json:"from"`
	To           RootSide         `json:"to"`
	Roles        []RoleKeysChange `json:"roles"`
	Verification string           `json:"verification"`
}

// DiffRoots compares root versions from < to, both in the chain verified from the pinned
// root.
func (h *History) DiffRoots(from, to int64) (*RootDiff, error) {
	if from < 1 || to < 1 {
		return nil, api.Errorf(api.CodeBadRequest, "root versions start at 1, not %d", min(from, to))
	}
	if from >= to {
		return nil, api.Errorf(api.CodeBadRequest, "root versions in the wrong order: %d is not older than %d; give the older version first (cairn diff --root %d %d)", from, to, min(from, to), max(from, to))
	}
	a, err := h.Root(from)
	if err != nil {
		return nil, err
	}
	b, err := h.Root(to)
	if err != nil {
		return nil, err
	}
	d := &RootDiff{Server: h.repo.cfg.Server, Pinned: h.pinned, Current: h.CurrentRoot(), From: h.rootSide(a), To: h.rootSide(b),
		Verification: fmt.Sprintf("every root from the pinned version %d to the current version %d is signed by a threshold of the root keys of the version before it and of its own (TUF §5.3)", h.pinned, h.CurrentRoot())}
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		d.Roles = append(d.Roles, diffRoleKeys(role, RootRoleKeys(a, role), RootRoleKeys(b, role)))
	}
	return d, nil
}

func (h *History) rootSide(md *metadata.Metadata[metadata.RootType]) RootSide {
	s := RootSide{Version: md.Signed.Version, Expires: md.Signed.Expires.UTC(), ConsistentSnapshot: md.Signed.ConsistentSnapshot, SignedBy: []string{}}
	keys := map[string]*metadata.Key{}
	for _, r := range []*metadata.Metadata[metadata.RootType]{h.roots[md.Signed.Version-1], md} {
		if r == nil {
			continue
		}
		for _, id := range r.Signed.Roles[tufrepo.RoleRoot].KeyIDs {
			if k, ok := r.Signed.Keys[id]; ok {
				keys[id] = k
			}
		}
	}
	for _, sig := range md.Signatures {
		if k, ok := keys[sig.KeyID]; ok && !slices.Contains(s.SignedBy, sig.KeyID) && signatureVerifies(tufrepo.RoleRoot, md, sig.KeyID, k) {
			s.SignedBy = append(s.SignedBy, sig.KeyID)
		}
	}
	slices.Sort(s.SignedBy)
	return s
}

// Empty reports whether the two sides list the same files.
func (f FileDiff) Empty() bool { return len(f.Added)+len(f.Removed)+len(f.Changed) == 0 }

// SignerList names the keys that signed a side, abbreviated.
func (h *HistoricalRole) SignerList() string {
	var ids []string
	for _, k := range h.Keys {
		if k.Signed {
			ids = append(ids, short(k.KeyID))
		}
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// ReleaseAttestations summarises a release's attestations for a diff: every file's bundles
// verified offline and checked complete against the signed index, as of the current
// verified snapshot (attestations are per file, not per role version). A repository that
// takes no attestations gives "none (…)"; a withheld or unverifiable committed bundle is
// an error, as in 'cairn attestations'.
func ReleaseAttestations(ctx context.Context, repo *Repo, a *API, rel Release) (string, error) {
	ids := map[api.SignerIdentity]bool{}
	types := map[string]bool{}
	n := 0
	for _, f := range rel.Files {
		set, err := VerifyFileAttestations(ctx, repo, a, f)
		if api.CodeOf(err) == api.CodeAttestationsOff {
			return "none (the repository takes no attestations)", nil
		}
		if err != nil {
			return "", fmt.Errorf("attestations of %s: %w", f.Path, err)
		}
		for _, v := range set.Attestations {
			n++
			ids[v.Identity] = true
			types[v.PredicateType] = true
		}
	}
	if n == 0 {
		return fmt.Sprintf("none on its %d files", len(rel.Files)), nil
	}
	return fmt.Sprintf("%d verified attestations by %d identities on its %d files (%s)", n, len(ids), len(rel.Files), strings.Join(slices.Sorted(maps.Keys(types)), ", ")), nil
}
