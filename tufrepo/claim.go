package tufrepo

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ClaimState is what the server knows when admins upload a new version of claimed.
type ClaimState struct {
	Targets        []byte // the current targets metadata, which delegates to claimed
	CurrentVersion int64  // of claimed
	// Claimed are the projects claimed now, with the delegation claimed must carry for
	// them (a queued maintainer change replaces the current one). Candidates are the
	// recently-claimed projects that may be moved in.
	Claimed    map[string]ProjectDelegation
	Candidates map[string]ProjectDelegation
}

// AcceptedClaim is a verified new version of claimed.
type AcceptedClaim struct {
	Raw     []byte
	Version int64
	Expires time.Time
	Moved   []string // recently-claimed projects it claims
}

// ValidateClaimed checks a new version of the claimed role, signed offline by the admins:
// the version is current+1, the expiry sensible, the signatures meet targets' delegation to
// claimed, it lists no targets, every delegation is to a known project with exactly the
// keys, threshold, path pattern and terminating flag that project must have, and no
// claimed project is dropped.
func ValidateClaimed(raw []byte, st ClaimState, now time.Time) (*AcceptedClaim, error) {
	if len(raw) > 64<<20 {
		return nil, api.Errorf(api.CodeTooLarge, "claimed metadata is %d bytes; at most 64 MiB are allowed", len(raw))
	}
	pm, err := ParseTargetsStrict(raw, "claimed metadata")
	if err != nil {
		return nil, err
	}
	md := pm.MD
	targets, err := metadata.Targets().FromBytes(st.Targets)
	if err != nil {
		return nil, fmt.Errorf("parsing targets: %w", err)
	}
	switch {
	case md.Signed.Version != st.CurrentVersion+1:
		return nil, api.Errorf(api.CodeVersionConflict, "claimed is at version %d, so the next version must be %d, not %d: download the queue again", st.CurrentVersion, st.CurrentVersion+1, md.Signed.Version)
	case md.Signed.Expires.Before(now.Add(24 * time.Hour)):
		return nil, api.Errorf(api.CodeExpired, "claimed version %d expires at %s, less than a day from now", md.Signed.Version, FormatExpires(md.Signed.Expires))
	case md.Signed.Expires.After(now.Add(MaxProjectRoleExpiry)):
		return nil, api.Errorf(api.CodeExpiryTooFar, "claimed version %d expires at %s; at most %d days ahead is allowed", md.Signed.Version, FormatExpires(md.Signed.Expires), int(MaxProjectRoleExpiry.Hours()/24))
	case len(md.Signed.Targets) > 0:
		return nil, api.Errorf(api.CodeBadRequest, "claimed may not list targets itself: only delegations")
	}
	if err := targets.VerifyDelegate(RoleClaimed, md); err != nil {
		return nil, api.Wrap(api.CodeSignatureInvalid, err, "claimed version %d is not signed by a threshold of the claimed keys that targets delegates to: %v", md.Signed.Version, err)
	}
	if err := CheckAllSignatures(fmt.Sprintf("claimed version %d", md.Signed.Version), pm.Payload, md.Signatures, delegatedKeys(targets, RoleClaimed)); err != nil {
		return nil, err
	}
	acc := &AcceptedClaim{Raw: raw, Version: md.Signed.Version, Expires: md.Signed.Expires}
	present := map[string]bool{}
	if d := md.Signed.Delegations; d != nil {
		if d.SuccinctRoles != nil {
			return nil, api.Errorf(api.CodeBadRequest, "claimed may not use succinct hash-bin delegations")
		}
		for _, role := range d.Roles {
			if present[role.Name] {
				return nil, api.Errorf(api.CodeBadRequest, "project %q is delegated twice", role.Name)
			}
			present[role.Name] = true
			want, claimed := st.Claimed[role.Name]
			if !claimed {
				var ok bool
				if want, ok = st.Candidates[role.Name]; !ok {
					return nil, api.Errorf(api.CodeNotFound, "claimed delegates to %q, which is not a recently-claimed or claimed project", role.Name)
				}
				acc.Moved = append(acc.Moved, role.Name)
			}
			if err := sameDelegation(role, d.Keys, want); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(st.Claimed)) {
		if !present[name] {
			return nil, api.Errorf(api.CodeBadRequest, "claimed version %d drops claimed project %q: a claimed project cannot be unclaimed", md.Signed.Version, name)
		}
	}
	slices.Sort(acc.Moved)
	return acc, nil
}

// sameDelegation checks that a delegation in claimed gives project exactly the keys and
// threshold it must have, with its own path pattern, terminating.
func sameDelegation(role metadata.DelegatedRole, keys map[string]*metadata.Key, want ProjectDelegation) error {
	if !role.Terminating || !slices.Equal(role.Paths, []string{ProjectPathPattern(want.Name)}) || len(role.PathHashPrefixes) > 0 {
		return api.Errorf(api.CodeBadRequest, "the delegation to %q must be terminating with paths [%q]", want.Name, ProjectPathPattern(want.Name))
	}
	if role.Threshold != want.Threshold {
		return api.Errorf(api.CodeInvalidThreshold, "the delegation to %q has threshold %d; the project's maintainers set %d", want.Name, role.Threshold, want.Threshold)
	}
	got := slices.Clone(role.KeyIDs)
	slices.Sort(got)
	if !slices.Equal(got, sortedIDs(want)) {
		return api.Errorf(api.CodeInvalidKey, "the delegation to %q lists keys %v; the project's maintainer keys are %v", want.Name, got, sortedIDs(want))
	}
	for _, id := range got {
		k, ok := keys[id]
		if !ok || KeyID(k) != id || k.Value.PublicKey != want.Keys[id].Value.PublicKey {
			return api.Errorf(api.CodeInvalidKey, "key %s of the delegation to %q is missing or differs from the maintainer's key", id, want.Name)
		}
	}
	return nil
}
