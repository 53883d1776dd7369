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

// Rules for the next root and targets, as the server applies them (tufrepo.ValidateRoot and
// ValidateTargets): they are checked here too, so that a refusal comes before any key is
// opened or anything is sent.
const (
	// MinTopLevelExpiry is the shortest lifetime the server accepts for a new root or
	// targets.
	MinTopLevelExpiry = 7 * 24 * time.Hour
	// MaxTopLevelExpiry is the longest.
	MaxTopLevelExpiry = tufrepo.MaxRootExpiry
	// MaxRoleKeys bounds the keys of one offline role.
	MaxRoleKeys = 32
)

// SubmitTopLevel uploads the next root and/or targets, signed offline by the admins (an
// admin token is needed). The server holds the answer for up to wait until it is
// published; the result's Status is api.StatusPublished (with the snapshot) or
// api.StatusStaged.
func (a *API) SubmitTopLevel(ctx context.Context, up api.TopLevelUpdate, wait time.Duration) (api.TopLevelResult, error) {
	var res api.TopLevelResult
	body, size, err := jsonBody(up)
	if err != nil {
		return res, err
	}
	what := "targets"
	if len(up.Root) > 0 {
		what = "root"
		if len(up.Targets) > 0 {
			what = "root and targets"
		}
	}
	_, err = a.do(ctx, request{
		method: http.MethodPost, url: a.endpoint(waitQuery(wait), "api", "v1", "admin", "root"),
		body: body, size: size, contentType: api.MediaJSON, auth: true, out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("uploading the new %s: %w", what, err)
	}
	return res, nil
}

// Status downloads the server's view of every top-level and delegating role: version,
// expiry, who signs it, and a warning when it expires soon. It is the server's word, not
// verified metadata; TopLevel gives the verified versions to compare with.
func (a *API) Status(ctx context.Context) (api.RepositoryStatus, error) {
	var res api.RepositoryStatus
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "status"), out: &res}); err != nil {
		return res, fmt.Errorf("reading the repository status: %w", err)
	}
	return res, nil
}

// TopLevel is the verified top-level metadata from one refresh.
type TopLevel struct {
	Root      *metadata.Metadata[metadata.RootType]
	Timestamp *metadata.Metadata[metadata.TimestampType]
	Snapshot  *metadata.Metadata[metadata.SnapshotType]
	Targets   *metadata.Metadata[metadata.TargetsType]
}

// TopLevel refreshes (following any root rotation from the trusted root) and returns the
// verified root, timestamp, snapshot and targets.
func (r *Repo) TopLevel(ctx context.Context) (*TopLevel, error) {
	// The signed snapshot itself is part of the answer: the classic path.
	if err := r.refreshClassic(ctx); err != nil {
		return nil, err
	}
	t := r.up.GetTrustedMetadataSet()
	tl := &TopLevel{Root: t.Root, Timestamp: t.Timestamp, Snapshot: t.Snapshot, Targets: t.Targets[tufrepo.RoleTargets]}
	if tl.Root == nil || tl.Timestamp == nil || tl.Snapshot == nil || tl.Targets == nil {
		return nil, &VerifyError{Code: ExitFailure, Detail: "the refresh did not load every top-level role"}
	}
	return tl, nil
}

// TopLevelKey describes one key of a top-level role.
type TopLevelKey struct {
	KeyID       string `json:"keyid"`
	KeyType     string `json:"keytype"`
	Fingerprint string `json:"fingerprint"`
}

func viewTopLevelKey(k *metadata.Key) TopLevelKey {
	v := TopLevelKey{KeyID: tufrepo.KeyID(k), KeyType: k.Type}
	if fp, err := tufrepo.Fingerprint(k); err == nil {
		v.Fingerprint = fp
	}
	return v
}

// RoleKeys are the keys and threshold root gives a top-level role.
type RoleKeys struct {
	Threshold int           `json:"threshold"`
	Keys      []TopLevelKey `json:"keys"` // sorted by key ID
}

// KeyIDs lists the key IDs, sorted.
func (k RoleKeys) KeyIDs() []string {
	out := make([]string, len(k.Keys))
	for i, x := range k.Keys {
		out[i] = x.KeyID
	}
	return out
}

// Has reports whether keyID is one of the keys.
func (k RoleKeys) Has(keyID string) bool { return slices.Contains(k.KeyIDs(), keyID) }

// RootRoleKeys reads what root says of role; a role root does not list has no keys.
func RootRoleKeys(root *metadata.Metadata[metadata.RootType], role string) RoleKeys {
	out := RoleKeys{Keys: []TopLevelKey{}}
	r := root.Signed.Roles[role]
	if r == nil {
		return out
	}
	out.Threshold = r.Threshold
	for _, id := range slices.Sorted(slices.Values(r.KeyIDs)) {
		if k, ok := root.Signed.Keys[id]; ok {
			out.Keys = append(out.Keys, viewTopLevelKey(k))
		} else {
			out.Keys = append(out.Keys, TopLevelKey{KeyID: id})
		}
	}
	return out
}

// RoleKeysChange is how the next root changes a role's keys and threshold.
type RoleKeysChange struct {
	Role    string        `json:"role"`
	Before  RoleKeys      `json:"before"`
	After   RoleKeys      `json:"after"`
	Added   []TopLevelKey `json:"added"`
	Removed []TopLevelKey `json:"removed"`
	Kept    []TopLevelKey `json:"kept"`
}

// Changed reports whether the keys or the threshold change.
func (c RoleKeysChange) Changed() bool {
	return c.Before.Threshold != c.After.Threshold || len(c.Added) > 0 || len(c.Removed) > 0
}

func diffRoleKeys(role string, before, after RoleKeys) RoleKeysChange {
	c := RoleKeysChange{Role: role, Before: before, After: after, Added: []TopLevelKey{}, Removed: []TopLevelKey{}, Kept: []TopLevelKey{}}
	for _, k := range after.Keys {
		if before.Has(k.KeyID) {
			c.Kept = append(c.Kept, k)
		} else {
			c.Added = append(c.Added, k)
		}
	}
	for _, k := range before.Keys {
		if !after.Has(k.KeyID) {
			c.Removed = append(c.Removed, k)
		}
	}
	return c
}

// RootChange is what the admins ask the next root to change. Zero values keep what the
// current root says.
type RootChange struct {
	// RootKeys, when not nil, become the root keys.
	RootKeys []*metadata.Key
	// RootThreshold, when not 0, becomes the root threshold. With new keys and no
	// threshold, the current threshold is kept if it fits.
	RootThreshold int
	// TargetsKeys, when not nil, become the targets keys; targets must then be re-signed
	// by them in the same update.
	TargetsKeys      []*metadata.Key
	TargetsThreshold int
	// TimestampKey and SnapshotKey, when not nil, become the only key of that online role
	// (threshold 1). The server must already hold the key (configured or --standby-key):
	// it refuses a root naming an online key it cannot sign with, and switches to the new
	// key in the publish that serves the root.
	TimestampKey *metadata.Key
	SnapshotKey  *metadata.Key
	// Expires is the expiry of the next root (required).
	Expires time.Time
}

// RootPlan says what the next root changes, for the admins to review.
type RootPlan struct {
	CurrentVersion int64          `json:"current_version"`
	NextVersion    int64          `json:"next_version"`
	ExpiresBefore  time.Time      `json:"expires_before"`
	Expires        time.Time      `json:"expires"`
	Root           RoleKeysChange `json:"root"`
	Targets        RoleKeysChange `json:"targets"`
	// Timestamp and Snapshot are the online keys: kept, or moved to one new key that the
	// server must already hold as a standby key.
	Timestamp RoleKeysChange `json:"timestamp"`
	Snapshot  RoleKeysChange `json:"snapshot"`
	// Warnings are allowed but risky choices.
	Warnings []string `json:"warnings"`
}

// TargetsKeysChanged reports whether targets must be re-signed by new keys with this root.
func (p *RootPlan) TargetsKeysChanged() bool { return p.Targets.Changed() }

// OnlineKeysChanged reports whether the next root moves timestamp or snapshot to another
// key, which the server must already hold as a standby key.
func (p *RootPlan) OnlineKeysChanged() bool { return p.Timestamp.Changed() || p.Snapshot.Changed() }

// Renewal reports whether the next root changes nothing but its version and expiry.
func (p *RootPlan) Renewal() bool {
	return !p.Root.Changed() && !p.Targets.Changed() && !p.OnlineKeysChanged()
}

// CheckTopLevelExpiry applies the server's expiry window to a new root or targets.
func CheckTopLevelExpiry(role string, expires, now time.Time) error {
	switch {
	case expires.Before(now.Add(MinTopLevelExpiry)):
		return api.Errorf(api.CodeExpired, "the new %s would expire at %s, less than %d days from now: the server refuses it; give a longer expiry", role, tufrepo.FormatExpires(expires), int(MinTopLevelExpiry.Hours()/24))
	case expires.After(now.Add(MaxTopLevelExpiry)):
		return api.Errorf(api.CodeExpiryTooFar, "the new %s would expire at %s; at most %d days ahead is allowed", role, tufrepo.FormatExpires(expires), int(MaxTopLevelExpiry.Hours()/24))
	}
	return nil
}

// onlineKeyIDs are the keys the server holds: timestamp and snapshot (from root) and the
// online delegations of targets (recently-claimed). An offline role must never use them.
func onlineKeyIDs(root *metadata.Metadata[metadata.RootType], targets *metadata.Metadata[metadata.TargetsType]) map[string]string {
	out := map[string]string{}
	for _, role := range []string{tufrepo.RoleTimestamp, tufrepo.RoleSnapshot} {
		if r := root.Signed.Roles[role]; r != nil {
			for _, id := range r.KeyIDs {
				out[id] = role
			}
		}
	}
	if targets != nil && targets.Signed.Delegations != nil {
		for _, d := range targets.Signed.Delegations.Roles {
			if d.Name == tufrepo.RoleRecentlyClaimed {
				for _, id := range d.KeyIDs {
					out[id] = d.Name
				}
			}
		}
	}
	return out
}

// newRoleKeys checks a new key set and threshold (0: keep current if it fits) for role.
func newRoleKeys(role string, keys []*metadata.Key, threshold int, current RoleKeys, online map[string]string, thresholdFlag string) (map[string]*metadata.Key, int, error) {
	set := map[string]*metadata.Key{}
	for _, k := range keys {
		if k == nil {
			return nil, 0, api.Errorf(api.CodeInvalidKey, "a new %s key is missing", role)
		}
		if _, err := tufrepo.Fingerprint(k); err != nil {
			return nil, 0, api.Wrap(api.CodeInvalidKey, err, "a new %s key is not usable: %v", role, err)
		}
		id := tufrepo.KeyID(k)
		if r, ok := online[id]; ok {
			return nil, 0, api.Errorf(api.CodeInvalidKey, "key %s is the server's online %s key: an offline role (%s) must never use a key the server holds", id, r, role)
		}
		set[id] = k
	}
	n := len(set)
	if n == 0 {
		return nil, 0, api.Errorf(api.CodeInvalidThreshold, "%s needs at least one key", role)
	}
	if n > MaxRoleKeys {
		return nil, 0, api.Errorf(api.CodeInvalidThreshold, "%s may have at most %d keys, not %d", role, MaxRoleKeys, n)
	}
	t := threshold
	if t == 0 {
		t = current.Threshold
		if t > n {
			return nil, 0, api.Errorf(api.CodeInvalidThreshold, "%s has threshold %d now, more than the %d new keys: give %s (1 to %d)", role, t, n, thresholdFlag, n)
		}
	}
	if t < 1 || t > n {
		return nil, 0, api.Errorf(api.CodeInvalidThreshold, "%s %d is not possible with %d %s keys: use 1 to %d", thresholdFlag, t, n, role, n)
	}
	return set, t, nil
}

// offlineKeyIDs are the keys of the offline roles of the current metadata: root and targets
// (from root) and claimed (from targets). An online role must never use them: the server
// would then hold a key that can sign for an offline role.
func offlineKeyIDs(root *metadata.Metadata[metadata.RootType], targets *metadata.Metadata[metadata.TargetsType]) map[string]string {
	out := map[string]string{}
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets} {
		if r := root.Signed.Roles[role]; r != nil {
			for _, id := range r.KeyIDs {
				out[id] = role
			}
		}
	}
	if targets != nil && targets.Signed.Delegations != nil {
		for _, d := range targets.Signed.Delegations.Roles {
			if d.Name != tufrepo.RoleRecentlyClaimed {
				for _, id := range d.KeyIDs {
					out[id] = d.Name
				}
			}
		}
	}
	return out
}

// newOnlineKey checks a new key for an online role (timestamp or snapshot).
func newOnlineKey(role string, k *metadata.Key, offline map[string]string) (string, error) {
	if _, err := tufrepo.Fingerprint(k); err != nil {
		return "", api.Wrap(api.CodeInvalidKey, err, "the new %s key is not usable: %v", role, err)
	}
	wire := tufrepo.KeyToAPI(k)
	if _, err := tufrepo.KeyFromAPI(wire); err != nil {
		return "", api.Wrap(api.CodeInvalidKey, err, "the new %s key is not valid: %v", role, err)
	}
	id := tufrepo.KeyID(k)
	if r, ok := offline[id]; ok {
		return "", api.Errorf(api.CodeInvalidKey, "key %s is a current %s key: an online role (%s) must never use an offline key, since the server holds the keys of online roles", id, r, role)
	}
	return id, nil
}

// PlanRootRotation writes the next root from the verified current root and targets: version
// + 1, the expiry asked for, the root and targets keys and thresholds asked for, and the
// timestamp and snapshot keys kept as the server holds them or moved to the new key asked
// for (threshold 1). The result is unsigned. It refuses what the server would refuse, an
// offline role that would use an online key (current or new), and an online role that
// would use an offline key.
func PlanRootRotation(cur *metadata.Metadata[metadata.RootType], targets *metadata.Metadata[metadata.TargetsType], ch RootChange, now time.Time) (*RootPlan, *metadata.Metadata[metadata.RootType], error) {
	if cur == nil || cur.Signed.Roles[tufrepo.RoleRoot] == nil || cur.Signed.Roles[tufrepo.RoleTargets] == nil {
		return nil, nil, api.Errorf(api.CodeMalformedMetadata, "the current root does not delegate root and targets")
	}
	expires := ch.Expires.UTC().Truncate(time.Second)
	if err := CheckTopLevelExpiry(tufrepo.RoleRoot, expires, now); err != nil {
		return nil, nil, err
	}
	raw, err := cur.ToBytes(false)
	if err != nil {
		return nil, nil, err
	}
	next, err := metadata.Root().FromBytes(raw)
	if err != nil {
		return nil, nil, err
	}
	next.Signatures = []metadata.Signature{}
	next.Signed.Version = cur.Signed.Version + 1
	next.Signed.Expires = expires
	next.Signed.ConsistentSnapshot = true

	online := onlineKeyIDs(cur, targets)
	plan := &RootPlan{
		CurrentVersion: cur.Signed.Version, NextVersion: next.Signed.Version,
		ExpiresBefore: cur.Signed.Expires.UTC(), Expires: expires,
		Warnings: []string{},
	}
	// The online roles first: a new online key is then one the server holds, which the
	// offline roles below must not use (the server refuses a root that gives root or
	// targets to any key it holds, standby keys included).
	offline := offlineKeyIDs(cur, targets)
	curOnline := maps.Clone(online)
	for _, r := range []struct {
		role string
		key  *metadata.Key
	}{{tufrepo.RoleTimestamp, ch.TimestampKey}, {tufrepo.RoleSnapshot, ch.SnapshotKey}} {
		if cur.Signed.Roles[r.role] == nil {
			return nil, nil, api.Errorf(api.CodeMalformedMetadata, "the current root does not delegate %s", r.role)
		}
		if r.key == nil {
			continue
		}
		id, err := newOnlineKey(r.role, r.key, offline)
		if err != nil {
			return nil, nil, err
		}
		if other, ok := curOnline[id]; ok && !slices.Contains(cur.Signed.Roles[r.role].KeyIDs, id) {
			// The server signs timestamp with its timestamp key or a standby key, never with
			// the key of another role; likewise snapshot.
			return nil, nil, api.Errorf(api.CodeInvalidKey, "key %s is the server's current %s key: give %s a key of its own, held by the server as --standby-key", id, other, r.role)
		}
		for _, old := range slices.Clone(cur.Signed.Roles[r.role].KeyIDs) {
			if err := next.Signed.RevokeKey(old, r.role); err != nil {
				return nil, nil, fmt.Errorf("removing %s key %s: %w", r.role, old, err)
			}
		}
		if err := next.Signed.AddKey(r.key, r.role); err != nil {
			return nil, nil, api.Wrap(api.CodeInvalidKey, err, "adding %s key %s: %v", r.role, id, err)
		}
		next.Signed.Roles[r.role].Threshold = 1
		if _, ok := online[id]; !ok {
			online[id] = r.role
		}
	}
	for _, r := range []struct {
		role, flag string
		keys       []*metadata.Key
		t          int
	}{{tufrepo.RoleRoot, "--threshold", ch.RootKeys, ch.RootThreshold}, {tufrepo.RoleTargets, "--targets-threshold", ch.TargetsKeys, ch.TargetsThreshold}} {
		before := RootRoleKeys(cur, r.role)
		keys := r.keys
		if keys == nil {
			// Keep the keys; only the threshold may change.
			for _, id := range before.KeyIDs() {
				keys = append(keys, cur.Signed.Keys[id])
			}
		}
		set, t, err := newRoleKeys(r.role, keys, r.t, before, online, r.flag)
		if err != nil {
			return nil, nil, err
		}
		for _, id := range before.KeyIDs() {
			if err := next.Signed.RevokeKey(id, r.role); err != nil {
				return nil, nil, fmt.Errorf("removing %s key %s: %w", r.role, id, err)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(set)) {
			if err := next.Signed.AddKey(set[id], r.role); err != nil {
				return nil, nil, api.Wrap(api.CodeInvalidKey, err, "adding %s key %s: %v", r.role, id, err)
			}
		}
		next.Signed.Roles[r.role].Threshold = t
	}
	plan.Root = diffRoleKeys(tufrepo.RoleRoot, RootRoleKeys(cur, tufrepo.RoleRoot), RootRoleKeys(next, tufrepo.RoleRoot))
	plan.Targets = diffRoleKeys(tufrepo.RoleTargets, RootRoleKeys(cur, tufrepo.RoleTargets), RootRoleKeys(next, tufrepo.RoleTargets))
	plan.Timestamp = diffRoleKeys(tufrepo.RoleTimestamp, RootRoleKeys(cur, tufrepo.RoleTimestamp), RootRoleKeys(next, tufrepo.RoleTimestamp))
	plan.Snapshot = diffRoleKeys(tufrepo.RoleSnapshot, RootRoleKeys(cur, tufrepo.RoleSnapshot), RootRoleKeys(next, tufrepo.RoleSnapshot))

	if nr := plan.Root.After; nr.Threshold == 1 && len(nr.Keys) > 1 {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("root threshold 1 of %d keys: any one of them, if stolen, can replace every key of the repository", len(nr.Keys)))
	} else if nr.Threshold == 1 {
		plan.Warnings = append(plan.Warnings, "root threshold 1: one stolen root key is enough to replace every key of the repository")
	}
	for _, id := range plan.Root.After.KeyIDs() {
		if plan.Targets.After.Has(id) {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("key %s signs both root and targets: separate keys limit what one stolen key can do", id))
		}
	}
	if ts, sn := plan.Timestamp.After.KeyIDs(), plan.Snapshot.After.KeyIDs(); plan.OnlineKeysChanged() && slices.Equal(ts, sn) {
		plan.Warnings = append(plan.Warnings, "timestamp and snapshot share one key: separate keys limit what one stolen key can do")
	}
	if len(plan.Root.Kept) == 0 && plan.Root.Changed() {
		plan.Warnings = append(plan.Warnings, "every root key is replaced: keep the old keys until every client has followed, and make sure the new keys and their passphrase are backed up")
	}
	return plan, next, nil
}

// TargetsPlan says what the next targets changes: only its version, expiry and signers;
// its delegations stay exactly as they are.
type TargetsPlan struct {
	CurrentVersion int64     `json:"current_version"`
	NextVersion    int64     `json:"next_version"`
	ExpiresBefore  time.Time `json:"expires_before"`
	Expires        time.Time `json:"expires"`
	// Delegations are the roles targets delegates to, with their thresholds, unchanged.
	Delegations []TargetsDelegation `json:"delegations"`
}

// TargetsDelegation is one role that targets delegates to.
type TargetsDelegation struct {
	Role      string        `json:"role"`
	Threshold int           `json:"threshold"`
	Keys      []TopLevelKey `json:"keys"`
	Paths     []string      `json:"paths"`
	// Online is set when the server holds the key (recently-claimed).
	Online bool `json:"online"`
}

// PlanTargetsResign writes the next targets from the verified current one: version + 1,
// the expiry asked for, the same delegations. The result is unsigned.
func PlanTargetsResign(cur *metadata.Metadata[metadata.TargetsType], expires, now time.Time) (*TargetsPlan, *metadata.Metadata[metadata.TargetsType], error) {
	if cur == nil {
		return nil, nil, api.Errorf(api.CodeNotFound, "there is no verified targets metadata")
	}
	expires = expires.UTC().Truncate(time.Second)
	if err := CheckTopLevelExpiry(tufrepo.RoleTargets, expires, now); err != nil {
		return nil, nil, err
	}
	if len(cur.Signed.Targets) > 0 {
		return nil, nil, api.Errorf(api.CodeBadRequest, "the current targets lists %d target files of its own; Cairn's top-level targets only delegates, and the server refuses a targets that lists files", len(cur.Signed.Targets))
	}
	raw, err := cur.ToBytes(false)
	if err != nil {
		return nil, nil, err
	}
	next, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		return nil, nil, err
	}
	next.Signatures = []metadata.Signature{}
	next.Signed.Version = cur.Signed.Version + 1
	next.Signed.Expires = expires
	if next.Signed.Targets == nil {
		next.Signed.Targets = map[string]*metadata.TargetFiles{}
	}
	// The delegations must come out exactly as they went in: the server compares them.
	a, err1 := tufrepo.Canonical(cur.Signed.Delegations)
	b, err2 := tufrepo.Canonical(next.Signed.Delegations)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		return nil, nil, fmt.Errorf("copying the delegations of targets version %d changed them; nothing was signed", cur.Signed.Version)
	}
	plan := &TargetsPlan{CurrentVersion: cur.Signed.Version, NextVersion: next.Signed.Version, ExpiresBefore: cur.Signed.Expires.UTC(), Expires: expires, Delegations: []TargetsDelegation{}}
	if dl := cur.Signed.Delegations; dl != nil {
		for _, d := range dl.Roles {
			td := TargetsDelegation{Role: d.Name, Threshold: d.Threshold, Paths: d.Paths, Keys: []TopLevelKey{}, Online: d.Name == tufrepo.RoleRecentlyClaimed}
			for _, id := range slices.Sorted(slices.Values(d.KeyIDs)) {
				if k, ok := dl.Keys[id]; ok {
					td.Keys = append(td.Keys, viewTopLevelKey(k))
				}
			}
			plan.Delegations = append(plan.Delegations, td)
		}
	}
	return plan, next, nil
}

// SignTopLevel signs the canonical form of md's signed part with every signer (each key
// once) and returns the metadata file.
func SignTopLevel[T metadata.Roles](ctx context.Context, md *metadata.Metadata[T], signers ...*tufrepo.OnlineSigner) ([]byte, error) {
	signed, err := tufrepo.Canonical(md.Signed)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var uniq []*tufrepo.OnlineSigner
	for _, s := range signers {
		if !seen[s.KeyID] {
			seen[s.KeyID] = true
			uniq = append(uniq, s)
		}
	}
	return tufrepo.SignEnvelope(ctx, signed, uniq...)
}

// CheckTopLevelUpdate checks a signed update against the verified current metadata exactly
// as the server will (tufrepo.ValidateRoot and ValidateTargets), so that nothing that
// would be refused, or that clients could not follow, is sent. A root whose targets keys
// change needs the targets signed by the new keys in the same update.
func CheckTopLevelUpdate(cur *TopLevel, up api.TopLevelUpdate, now time.Time) error {
	if len(up.Root) == 0 && len(up.Targets) == 0 {
		return api.Errorf(api.CodeBadRequest, "nothing to send: neither a new root nor a new targets")
	}
	curRoot, err := cur.Root.ToBytes(false)
	if err != nil {
		return err
	}
	root := cur.Root
	if len(up.Root) > 0 {
		// The server checks that timestamp and snapshot go to keys it holds; any key the
		// current root gives them is one the server held at the last publish. A new
		// timestamp or snapshot key is taken to be one of its standby keys (only the server
		// knows; it refuses the root otherwise), and like every key it holds it may not sign
		// root or targets.
		var online tufrepo.Signers
		for role, dst := range map[string]**tufrepo.OnlineSigner{tufrepo.RoleTimestamp: &online.Timestamp, tufrepo.RoleSnapshot: &online.Snapshot} {
			r := cur.Root.Signed.Roles[role]
			if r == nil || len(r.KeyIDs) == 0 {
				return api.Errorf(api.CodeMalformedMetadata, "the current root has no %s key", role)
			}
			*dst = &tufrepo.OnlineSigner{KeyID: r.KeyIDs[0]}
		}
		if next, err := metadata.Root().FromBytes(up.Root); err == nil {
			for _, role := range []string{tufrepo.RoleTimestamp, tufrepo.RoleSnapshot} {
				if r := next.Signed.Roles[role]; r != nil {
					for _, id := range r.KeyIDs {
						if id != online.Timestamp.KeyID && id != online.Snapshot.KeyID {
							online.Standby = append(online.Standby, &tufrepo.OnlineSigner{KeyID: id})
						}
					}
				}
			}
		}
		for id, role := range onlineKeyIDs(cur.Root, cur.Targets) {
			if role == tufrepo.RoleRecentlyClaimed {
				online.RecentlyClaimed = &tufrepo.OnlineSigner{KeyID: id}
			}
		}
		acc, err := tufrepo.ValidateRoot(up.Root, curRoot, online, now)
		if err != nil {
			return err
		}
		if acc.TargetsKeysChanged && len(up.Targets) == 0 {
			return api.Errorf(api.CodeBadRequest, "root version %d changes the targets keys, so targets version %d signed by the new targets keys must go with it", acc.Version, cur.Targets.Signed.Version+1)
		}
		root = acc.Root
	}
	if len(up.Targets) > 0 {
		curTargets, err := cur.Targets.ToBytes(false)
		if err != nil {
			return err
		}
		if _, err := tufrepo.ValidateTargets(up.Targets, curTargets, root, now); err != nil {
			return err
		}
	}
	return nil
}

// KeyList names keys for messages: "1a2b3c4d5e6f7a8b (SHA256:…), …".
func KeyList(keys []TopLevelKey) string {
	out := make([]string, len(keys))
	for i, k := range keys {
		id := k.KeyID
		if len(id) > 16 {
			id = id[:16]
		}
		out[i] = id
		if k.Fingerprint != "" {
			out[i] += " (" + k.Fingerprint + ")"
		}
	}
	return strings.Join(out, ", ")
}
