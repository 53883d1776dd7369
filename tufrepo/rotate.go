package tufrepo

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// MaxRootExpiry bounds how far ahead a new root may expire.
const MaxRootExpiry = 2 * 365 * 24 * time.Hour

// AcceptedRoot is a verified next root.
type AcceptedRoot struct {
	Raw     []byte
	Version int64
	Expires time.Time
	// TargetsKeysChanged is set when the new root delegates targets to other keys or
	// another threshold: targets must be re-signed by them in the same step.
	TargetsKeysChanged bool
	Root               *metadata.Metadata[metadata.RootType]
}

// ValidateRoot checks the next root (TUF 5.3.4–5.3.5 as a client would): version current+1,
// signed by a threshold of the current root keys and of its own root keys, consistent
// snapshots on, a sensible expiry. The timestamp and snapshot keys must stay those the
// server signs with (online key rotation is done by configuring the new keys first; see
// DESIGN.md).
func ValidateRoot(raw, currentRaw []byte, signers Signers, now time.Time) (*AcceptedRoot, error) {
	cur, err := metadata.Root().FromBytes(currentRaw)
	if err != nil {
		return nil, fmt.Errorf("parsing current root: %w", err)
	}
	np, err := ParseRootStrict(raw, "the new root")
	if err != nil {
		return nil, err
	}
	next := np.MD
	switch {
	case next.Signed.Version != cur.Signed.Version+1:
		return nil, api.Errorf(api.CodeVersionConflict, "root is at version %d, so the next must be %d, not %d", cur.Signed.Version, cur.Signed.Version+1, next.Signed.Version)
	case !next.Signed.ConsistentSnapshot:
		return nil, api.Errorf(api.CodeBadRequest, "the new root must keep consistent_snapshot true")
	case next.Signed.Expires.Before(now.Add(7 * 24 * time.Hour)):
		return nil, api.Errorf(api.CodeExpired, "the new root expires at %s, less than 7 days from now", FormatExpires(next.Signed.Expires))
	case next.Signed.Expires.After(now.Add(MaxRootExpiry)):
		return nil, api.Errorf(api.CodeExpiryTooFar, "the new root expires at %s; at most %d days ahead is allowed", FormatExpires(next.Signed.Expires), int(MaxRootExpiry.Hours()/24))
	}
	if err := cur.VerifyDelegate(RoleRoot, next); err != nil {
		return nil, api.Wrap(api.CodeSignatureInvalid, err, "root version %d is not signed by a threshold (%d) of the current root keys: %v", next.Signed.Version, cur.Signed.Roles[RoleRoot].Threshold, err)
	}
	if err := next.VerifyDelegate(RoleRoot, next); err != nil {
		return nil, api.Wrap(api.CodeSignatureInvalid, err, "root version %d is not signed by a threshold (%d) of its own root keys: %v", next.Signed.Version, next.Signed.Roles[RoleRoot].Threshold, err)
	}
	// A new root is signed by old and new root keys (TUF 5.3.4): either may sign.
	allowed := rootRoleKeys(cur, RoleRoot)
	for id, k := range rootRoleKeys(next, RoleRoot) {
		allowed[id] = k
	}
	if err := CheckAllSignatures(fmt.Sprintf("root version %d", next.Signed.Version), np.Payload, next.Signatures, allowed); err != nil {
		return nil, err
	}
	// Timestamp and snapshot must go to keys the server holds (configured or standby), with
	// threshold 1; the publisher switches to them when this root is published.
	if _, _, err := signers.ForRoot(next); err != nil {
		return nil, api.Wrap(api.CodeInvalidKey, err, "%v: to rotate online keys, start the server with the new key as --standby-key first", err)
	}
	for _, role := range []string{RoleTimestamp, RoleSnapshot} {
		if next.Signed.Roles[role].Threshold != 1 {
			return nil, api.Errorf(api.CodeInvalidThreshold, "the new root must give %s threshold 1: the server signs it with one online key", role)
		}
	}
	online := map[string]bool{signers.Timestamp.KeyID: true, signers.Snapshot.KeyID: true}
	if signers.RecentlyClaimed != nil {
		online[signers.RecentlyClaimed.KeyID] = true
	}
	for _, s := range signers.Standby {
		online[s.KeyID] = true
	}
	for _, role := range []string{RoleRoot, RoleTargets} {
		r := next.Signed.Roles[role]
		if r == nil || r.Threshold < 1 || r.Threshold > len(r.KeyIDs) {
			return nil, api.Errorf(api.CodeInvalidThreshold, "the new root must delegate %s to at least one key with a threshold between 1 and the number of its keys", role)
		}
		for _, id := range r.KeyIDs {
			if online[id] {
				return nil, api.Errorf(api.CodeInvalidKey, "the new root gives %s to key %s, one of the server's online keys: a server compromise would then be a %s compromise", role, id, role)
			}
		}
	}
	ct, nt := cur.Signed.Roles[RoleTargets], next.Signed.Roles[RoleTargets]
	changed := nt == nil || ct.Threshold != nt.Threshold || !slices.Equal(sortedStrings(ct.KeyIDs), sortedStrings(nt.KeyIDs))
	return &AcceptedRoot{Raw: raw, Version: next.Signed.Version, Expires: next.Signed.Expires, TargetsKeysChanged: changed, Root: next}, nil
}

// ValidateTargets checks a re-signed targets (version current+1) against root: signed by
// root's targets keys, expiry sensible, no targets of its own, and exactly the same
// delegations as the current version (the claimed and recently-claimed keys change only
// through a root ceremony, not here).
func ValidateTargets(raw, currentRaw []byte, root *metadata.Metadata[metadata.RootType], now time.Time) (*metadata.Metadata[metadata.TargetsType], error) {
	cur, err := metadata.Targets().FromBytes(currentRaw)
	if err != nil {
		return nil, fmt.Errorf("parsing current targets: %w", err)
	}
	np, err := ParseTargetsStrict(raw, "the new targets")
	if err != nil {
		return nil, err
	}
	next := np.MD
	switch {
	case next.Signed.Version != cur.Signed.Version+1:
		return nil, api.Errorf(api.CodeVersionConflict, "targets is at version %d, so the next must be %d, not %d", cur.Signed.Version, cur.Signed.Version+1, next.Signed.Version)
	case next.Signed.Expires.Before(now.Add(7 * 24 * time.Hour)):
		return nil, api.Errorf(api.CodeExpired, "the new targets expires at %s, less than 7 days from now", FormatExpires(next.Signed.Expires))
	case next.Signed.Expires.After(now.Add(MaxRootExpiry)):
		return nil, api.Errorf(api.CodeExpiryTooFar, "the new targets expires at %s; at most %d days ahead is allowed", FormatExpires(next.Signed.Expires), int(MaxRootExpiry.Hours()/24))
	case len(next.Signed.Targets) > 0:
		return nil, api.Errorf(api.CodeBadRequest, "top-level targets may not list targets itself")
	}
	if err := root.VerifyDelegate(RoleTargets, next); err != nil {
		return nil, api.Wrap(api.CodeSignatureInvalid, err, "targets version %d is not signed by a threshold of the targets keys root delegates to: %v", next.Signed.Version, err)
	}
	if err := CheckAllSignatures(fmt.Sprintf("targets version %d", next.Signed.Version), np.Payload, next.Signatures, rootRoleKeys(root, RoleTargets)); err != nil {
		return nil, err
	}
	a, err1 := Canonical(cur.Signed.Delegations)
	b, err2 := Canonical(next.Signed.Delegations)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		return nil, api.Errorf(api.CodeBadRequest, "the new targets must keep exactly the delegations of version %d (claimed and recently-claimed, same keys)", cur.Signed.Version)
	}
	return next, nil
}

func sortedStrings(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
