package client

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ClaimedExpiry is how long a version of claimed written by PlanClaim stays valid.
const ClaimedExpiry = tufrepo.OfflineExpiry

// ClaimQueue downloads what waits for the admins' next offline signing of claimed (an
// admin token is needed). It is the server's word: PlanClaim checks it against the
// verified metadata.
func (a *API) ClaimQueue(ctx context.Context) (api.ClaimQueue, error) {
	var res api.ClaimQueue
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "admin", "claims"), auth: true, out: &res}); err != nil {
		return res, fmt.Errorf("downloading the claim queue: %w", err)
	}
	return res, nil
}

// SubmitClaimed uploads a new version of claimed signed by the admins (raw, the exact
// signed bytes). The server holds the answer for up to wait until it is published; the
// result's Status is api.StatusPublished (with the snapshot) or api.StatusStaged.
func (a *API) SubmitClaimed(ctx context.Context, raw []byte, wait time.Duration) (api.ClaimResult, error) {
	var res api.ClaimResult
	_, err := a.do(ctx, request{
		method: http.MethodPost, url: a.endpoint(waitQuery(wait), "api", "v1", "admin", "claimed"),
		body: bytes.NewReader(raw), size: int64(len(raw)), contentType: api.MediaJSON, auth: true, out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("uploading claimed: %w", err)
	}
	return res, nil
}

// Delegators is the verified top of the trust chain: root, timestamp, snapshot, targets and
// the two delegating roles, from one refresh.
type Delegators struct {
	Root            *metadata.Metadata[metadata.RootType]
	Timestamp       *metadata.Metadata[metadata.TimestampType]
	Snapshot        *metadata.Metadata[metadata.SnapshotType]
	Targets         *metadata.Metadata[metadata.TargetsType]
	Claimed         *metadata.Metadata[metadata.TargetsType]
	RecentlyClaimed *metadata.Metadata[metadata.TargetsType]
}

// delegatorProbe is a target path under no project (project names cannot start with "_")
// that every delegating role's "*/*/*" pattern matches: looking it up makes the updater
// load and verify claimed and recently-claimed, and nothing below them.
var delegatorProbe = tufrepo.TargetPath("_cairn-probe", "0", probeFile)

// Delegators refreshes and returns the verified top-level and delegating roles.
func (r *Repo) Delegators(ctx context.Context) (*Delegators, error) {
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	r.fetch.ctx = ctx
	_, lookupErr := r.up.GetTargetInfo(delegatorProbe)
	if lookupErr != nil && !isTargetNotFound(lookupErr) {
		return nil, r.tufError(lookupErr, "loading claimed and recently-claimed")
	}
	return r.loadedDelegators(), nil
}

// loadedDelegators reads the trusted metadata the updater holds now.
func (r *Repo) loadedDelegators() *Delegators {
	t := r.up.GetTrustedMetadataSet()
	return &Delegators{
		Root: t.Root, Timestamp: t.Timestamp, Snapshot: t.Snapshot,
		Targets: t.Targets[tufrepo.RoleTargets], Claimed: t.Targets[tufrepo.RoleClaimed], RecentlyClaimed: t.Targets[tufrepo.RoleRecentlyClaimed],
	}
}

// ClaimedDelegation returns targets' delegation to claimed: the admin keys and threshold
// that must sign it.
func (d *Delegators) ClaimedDelegation() (*metadata.DelegatedRole, map[string]*metadata.Key, error) {
	if d.Targets == nil || d.Targets.Signed.Delegations == nil {
		return nil, nil, api.Errorf(api.CodeNotFound, "the verified targets metadata delegates to no role")
	}
	for i, role := range d.Targets.Signed.Delegations.Roles {
		if role.Name == tufrepo.RoleClaimed {
			return &d.Targets.Signed.Delegations.Roles[i], d.Targets.Signed.Delegations.Keys, nil
		}
	}
	return nil, nil, api.Errorf(api.CodeNotFound, "the verified targets metadata does not delegate to %q", tufrepo.RoleClaimed)
}

// ClaimEntry is a project's delegation as claimed will carry it.
type ClaimEntry struct {
	Name              string    `json:"name"`
	Keys              []KeyView `json:"keys"`
	Threshold         int       `json:"threshold"`
	DelegationVersion int64     `json:"delegation_version"`
}

// ClaimPlan is what the next version of claimed changes, for the admins to review.
type ClaimPlan struct {
	CurrentVersion int64     `json:"current_version"`
	NextVersion    int64     `json:"next_version"`
	Expires        time.Time `json:"expires"`
	// Move are the recently-claimed projects moved into claimed; Waiting the ones that
	// stay in recently-claimed.
	Move    []ClaimEntry `json:"move"`
	Waiting []ClaimEntry `json:"waiting"`
	// Changes are the queued maintainer changes of claimed projects that this version
	// applies, one entry a project: what its delegation becomes, and the signed change
	// documents behind it, each verified here against the keys before it.
	Changes []ClaimChange `json:"changes"`
	// Kept are the claimed projects whose delegation stays as it is.
	Kept []string `json:"kept"`
}

// ClaimChange is what the queued maintainer changes of one claimed project do together
// (the embedded diff: the delegation in claimed now against the one it will carry), with
// the change documents they come from, oldest first.
type ClaimChange struct {
	MaintainerDiff
	Documents []QueuedChange `json:"documents"`
}

// QueuedChange is one signed maintainer change document of a claimed project's queue,
// verified offline against the keys before it (those in claimed for the first, those of
// the document before for the others).
type QueuedChange struct {
	// Change is what the document changes against the keys before it.
	Change MaintainerDiff `json:"change"`
	// SignedBy are the keys before it whose signatures verify; Threshold of them were
	// needed, of KeysBefore.
	SignedBy   []KeyView `json:"signed_by"`
	Threshold  int       `json:"threshold"`
	KeysBefore int       `json:"keys_before"`
	// Expired is set when the document expired while it waited for the admins: its
	// signatures were checked as of just before its expiry. An old signed document could be
	// replayed, so an expired one is to be applied only once its maintainers confirmed it.
	Expired bool `json:"expired,omitempty"`
}

// VerifyQueuedChanges checks offline, trusting nothing the server says, that the signed
// change documents queued for a claimed project (oldest first) chain from current, the
// delegation in the verified claimed metadata, to the delegation the queue asks claimed to
// carry (queued, at version queuedVersion): each document is a valid maintainer change
// (tufrepo.ValidateMaintainerChange) of the keys before it (current for the first, the
// document before for the others) signed by a threshold of them, the versions follow one
// another up to queuedVersion, and the last one names exactly queued's keys and
// threshold. A document that expired while queued is verified as of just before its expiry
// and marked Expired.
func VerifyQueuedChanges(project string, current MaintainerSet, docs [][]byte, queued MaintainerSet, queuedVersion int64, now time.Time) ([]QueuedChange, error) {
	refuse := func(i int, version int64, format string, args ...any) error {
		what := fmt.Sprintf("queued maintainer change document %d of %d of %s", i+1, len(docs), project)
		if version > 0 {
			what = fmt.Sprintf("queued maintainer change %d of %s (document %d of %d)", version, project, i+1, len(docs))
		}
		return api.Errorf(api.CodeSignatureInvalid, "%s %s: the server queued keys the maintainers did not sign; nothing was signed", what, fmt.Sprintf(format, args...))
	}
	if len(docs) == 0 {
		return nil, api.Errorf(api.CodeSignatureInvalid, "the server says maintainer changes of claimed project %s are queued but sends no signed change document to check them: the server queued keys the maintainers did not sign; nothing was signed", project)
	}
	version := queuedVersion - int64(len(docs))
	if version < 0 {
		return nil, api.Errorf(api.CodeSignatureInvalid, "the queue gives claimed project %s delegation version %d with %d queued change documents: the versions cannot chain; the server queued keys the maintainers did not sign; nothing was signed", project, queuedVersion, len(docs))
	}
	before := current
	out := make([]QueuedChange, 0, len(docs))
	for i, raw := range docs {
		c, err := ParseMaintainerChange(raw)
		if err != nil {
			return nil, refuse(i, 0, "does not parse (%s)", api.ProblemFor(err).Detail)
		}
		at, expired := now, false
		if !c.Doc.Expires.After(now) {
			// The signing window ended while the change waited for the admins; the signatures
			// and the chain are checked as of just before it ended.
			at, expired = c.Doc.Expires.Add(-time.Second), true
		}
		acc, err := tufrepo.ValidateMaintainerChange(raw, before.Delegation(project), version, at)
		if err != nil {
			return nil, refuse(i, c.Doc.Version, "does not verify against the %d maintainer key(s) before it (%s, %d must sign): %s", len(before.Keys), maintainerKeysText(before), before.Threshold, api.ProblemFor(err).Detail)
		}
		if !acc.Complete() {
			return nil, refuse(i, c.Doc.Version, "is signed by %d of the %d maintainer keys before it, but %d must sign (%s)", len(acc.SignedBy), len(before.Keys), before.Threshold, maintainerKeysText(before))
		}
		after := MaintainerSet{Keys: acc.New.Keys, Threshold: acc.New.Threshold}
		q := QueuedChange{Change: DiffMaintainers(project, acc.Doc.Version, before, after), Threshold: before.Threshold, KeysBefore: len(before.Keys), Expired: expired}
		q.Change.Expires = acc.Doc.Expires
		for _, id := range acc.SignedBy {
			q.SignedBy = append(q.SignedBy, ViewKey(before.Keys[id]))
		}
		out = append(out, q)
		before, version = after, acc.Doc.Version
	}
	if version != queuedVersion || !sameSet(before, queued) {
		return nil, refuse(len(docs)-1, version, "gives %s %d of %d maintainer keys (%s) as version %d, but the queue asks claimed to delegate it to %d of %d (%s) as version %d",
			project, before.Threshold, len(before.Keys), maintainerKeysText(before), version, queued.Threshold, len(queued.Keys), maintainerKeysText(queued), queuedVersion)
	}
	return out, nil
}

func maintainerKeysText(s MaintainerSet) string {
	ids := s.KeyIDs()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = short(id) + " " + ViewKey(s.Keys[id]).Fingerprint
	}
	return strings.Join(out, ", ")
}

// Empty reports whether the next version would change no delegation.
func (p *ClaimPlan) Empty() bool { return len(p.Move) == 0 && len(p.Changes) == 0 }

// PlanClaim checks the server's claim queue against the verified metadata and writes the
// next version of claimed: every project claimed now is kept, queued maintainer changes
// are applied, and the recently-claimed projects named in move (all of them with all) are
// moved in. The result is unsigned. It refuses a queue whose claimed metadata is not the
// verified one, that misstates a claimed project's current delegation, or that names
// projects the verified metadata does not know.
func PlanClaim(d *Delegators, q api.ClaimQueue, move []string, all bool, now time.Time) (*ClaimPlan, *metadata.Metadata[metadata.TargetsType], error) {
	if d.Claimed == nil || d.Targets == nil {
		return nil, nil, api.Errorf(api.CodeNotFound, "the verified metadata has no claimed role")
	}
	cur, err := metadata.Targets().FromBytes(q.Claimed)
	if err != nil {
		return nil, nil, api.Wrap(api.CodeMalformedMetadata, err, "the server's current claimed metadata does not parse: %v", err)
	}
	if err := d.Targets.VerifyDelegate(tufrepo.RoleClaimed, cur); err != nil {
		return nil, nil, api.Wrap(api.CodeSignatureInvalid, err, "the server's current claimed metadata (version %d) is not signed by the claimed keys that the verified targets delegates to: %v", cur.Signed.Version, err)
	}
	if cur.Signed.Version != q.ClaimedVersion || cur.Signed.Version != d.Claimed.Signed.Version {
		return nil, nil, api.Errorf(api.CodeVersionConflict, "the server's latest claimed is version %d (it says %d), but the verified snapshot publishes version %d: wait until the server has published its latest claimed, then run the command again",
			cur.Signed.Version, q.ClaimedVersion, d.Claimed.Signed.Version)
	}
	a, err1 := tufrepo.Canonical(cur.Signed)
	b, err2 := tufrepo.Canonical(d.Claimed.Signed)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		return nil, nil, api.Errorf(api.CodeVersionConflict, "the server's claimed version %d differs from the verified claimed version %d: refusing to build on it", cur.Signed.Version, d.Claimed.Signed.Version)
	}

	trusted := map[string]metadata.DelegatedRole{}
	var keys map[string]*metadata.Key
	if dl := d.Claimed.Signed.Delegations; dl != nil {
		if dl.SuccinctRoles != nil {
			return nil, nil, api.Errorf(api.CodeUnsupported, "the verified claimed uses hash-bin delegations, which this client does not write")
		}
		keys = dl.Keys
		for _, r := range dl.Roles {
			trusted[r.Name] = r
		}
	}
	setOf := func(cp api.ClaimProject) (MaintainerSet, error) {
		s := MaintainerSet{Keys: map[string]*metadata.Key{}, Threshold: cp.Threshold}
		for id, w := range cp.Keys {
			k, err := tufrepo.KeyFromAPI(w)
			if err != nil {
				return s, api.Wrap(api.CodeInvalidKey, err, "the queue gives project %s an invalid key %s: %v", cp.Name, id, err)
			}
			s.Keys[id] = k
		}
		if err := CheckMaintainerSet(cp.Name, s); err != nil {
			return s, fmt.Errorf("the queue gives project %s a delegation that is not allowed: %w", cp.Name, err)
		}
		return s, nil
	}

	recent := map[string]metadata.DelegatedRole{}
	var recentKeys map[string]*metadata.Key
	var rcVersion int64
	if d.RecentlyClaimed != nil {
		rcVersion = d.RecentlyClaimed.Signed.Version
		if dl := d.RecentlyClaimed.Signed.Delegations; dl != nil {
			recentKeys = dl.Keys
			for _, r := range dl.Roles {
				recent[r.Name] = r
			}
		}
	}

	plan := &ClaimPlan{CurrentVersion: cur.Signed.Version, NextVersion: cur.Signed.Version + 1, Expires: now.UTC().Add(ClaimedExpiry).Truncate(time.Second),
		Move: []ClaimEntry{}, Waiting: []ClaimEntry{}, Changes: []ClaimChange{}, Kept: []string{}}
	newSets := map[string]MaintainerSet{}
	candidates := map[string]api.ClaimProject{}
	listed := map[string]bool{}
	for _, cp := range q.Projects {
		if err := tufrepo.ValidateProjectName(cp.Name); err != nil {
			return nil, nil, fmt.Errorf("the queue lists a project with a bad name: %w", err)
		}
		if listed[cp.Name] {
			return nil, nil, api.Errorf(api.CodeMalformedJSON, "the queue lists project %s twice", cp.Name)
		}
		listed[cp.Name] = true
		s, err := setOf(cp)
		if err != nil {
			return nil, nil, err
		}
		tr, inClaimed := trusted[cp.Name]
		switch {
		case cp.Claimed && !inClaimed:
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the server says %s is claimed, but the verified claimed version %d does not delegate to it", cp.Name, cur.Signed.Version)
		case !cp.Claimed && inClaimed:
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the server offers %s to be claimed, but the verified claimed version %d already delegates to it", cp.Name, cur.Signed.Version)
		case !cp.Change && len(cp.Changes) > 0:
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the queue carries %d maintainer change document(s) of %s but says no change of it is queued", len(cp.Changes), cp.Name)
		case cp.Claimed && !cp.Change:
			if !sameSet(delegatedSet(tr.KeyIDs, tr.Threshold, keys), s) {
				return nil, nil, api.Errorf(api.CodeVersionConflict, "the server's keys or threshold for claimed project %s differ from the verified claimed version %d, and it reports no queued maintainer change", cp.Name, cur.Signed.Version)
			}
		case cp.Claimed && cp.Change:
			// Trust no key the queue names unless the maintainers signed it, document by
			// document, from the keys in the verified claimed.
			docs, err := VerifyQueuedChanges(cp.Name, delegatedSet(tr.KeyIDs, tr.Threshold, keys), cp.Changes, s, cp.DelegationVersion, now)
			if err != nil {
				return nil, nil, err
			}
			newSets[cp.Name] = s
			plan.Changes = append(plan.Changes, ClaimChange{MaintainerDiff: DiffMaintainers(cp.Name, cp.DelegationVersion, delegatedSet(tr.KeyIDs, tr.Threshold, keys), s), Documents: docs})
		case !cp.Claimed && cp.Change:
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the queue says a maintainer change of %s is queued for the admins, but %s is not claimed", cp.Name, cp.Name)
		default:
			candidates[cp.Name] = cp
		}
	}
	selected := map[string]bool{}
	for _, n := range move {
		if _, ok := candidates[n]; !ok {
			if _, claimed := trusted[n]; claimed {
				return nil, nil, api.Errorf(api.CodeBadRequest, "project %s is already claimed", n)
			}
			return nil, nil, api.Errorf(api.CodeNotFound, "project %s is not waiting to be claimed: it is not a recently-claimed project with a published role (waiting: %s)", n, namesOr(slices.Sorted(maps.Keys(candidates))))
		}
		selected[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(candidates)) {
		cp := candidates[n]
		s, _ := setOf(cp)
		e := ClaimEntry{Name: n, Threshold: cp.Threshold, DelegationVersion: cp.DelegationVersion}
		for _, id := range s.KeyIDs() {
			e.Keys = append(e.Keys, ViewKey(s.Keys[id]))
		}
		if all || selected[n] {
			// What the admins cement offline must be what clients already verify for the
			// project, not a delegation the server offers only now.
			if rc, ok := recent[n]; !ok || !sameSet(delegatedSet(rc.KeyIDs, rc.Threshold, recentKeys), s) {
				what := "does not delegate to it"
				if ok {
					what = fmt.Sprintf("delegates it to other keys or another threshold (%d of %d)", rc.Threshold, len(rc.KeyIDs))
				}
				return nil, nil, api.Errorf(api.CodeVersionConflict, "the server offers %s for claiming with %d of %d maintainer keys, but the verified recently-claimed (version %d) %s: wait until the server has published the project's current maintainers, then run the command again",
					n, s.Threshold, len(s.Keys), rcVersion, what)
			}
			plan.Move = append(plan.Move, e)
			newSets[n] = s
		} else {
			plan.Waiting = append(plan.Waiting, e)
		}
	}

	next := metadata.Targets(plan.Expires)
	next.Signed.SpecVersion = cur.Signed.SpecVersion
	next.Signed.Version = plan.NextVersion
	next.Signed.UnrecognizedFields = cur.Signed.UnrecognizedFields
	next.Signed.Targets = map[string]*metadata.TargetFiles{}
	dl := &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
	var roles []metadata.DelegatedRole
	if d.Claimed.Signed.Delegations != nil {
		roles = d.Claimed.Signed.Delegations.Roles
	}
	for _, r := range roles {
		s, changed := newSets[r.Name]
		if !changed {
			s = delegatedSet(r.KeyIDs, r.Threshold, keys)
			plan.Kept = append(plan.Kept, r.Name)
		}
		r.KeyIDs, r.Threshold = s.KeyIDs(), s.Threshold
		for id, k := range s.Keys {
			dl.Keys[id] = k
		}
		dl.Roles = append(dl.Roles, r)
	}
	for _, e := range plan.Move {
		s := newSets[e.Name]
		for id, k := range s.Keys {
			dl.Keys[id] = k
		}
		dl.Roles = append(dl.Roles, metadata.DelegatedRole{Name: e.Name, KeyIDs: s.KeyIDs(), Threshold: s.Threshold, Terminating: true, Paths: []string{tufrepo.ProjectPathPattern(e.Name)}})
	}
	next.Signed.Delegations = dl
	slices.Sort(plan.Kept)
	return plan, next, nil
}

func sameSet(a, b MaintainerSet) bool {
	if a.Threshold != b.Threshold || !slices.Equal(a.KeyIDs(), b.KeyIDs()) {
		return false
	}
	for id, k := range a.Keys {
		if b.Keys[id].Value.PublicKey != k.Value.PublicKey {
			return false
		}
	}
	return true
}

func namesOr(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
