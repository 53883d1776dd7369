package tufrepo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// MaxMaintainerChangeLifetime bounds how far ahead a maintainer change document may expire:
// it is a one-off request, not standing metadata.
const MaxMaintainerChangeLifetime = 31 * 24 * time.Hour

// AcceptedChange is a maintainer change document that passed every check.
type AcceptedChange struct {
	Raw        []byte
	Signed     json.RawMessage
	Doc        api.MaintainerChange
	New        ProjectDelegation
	SignedBy   []string
	Signatures []metadata.Signature
	Threshold  int // of the current maintainers
}

// Complete reports whether a threshold of the current maintainers signed.
func (c *AcceptedChange) Complete() bool { return len(c.SignedBy) >= c.Threshold }

// ValidateMaintainerChange checks a maintainer change document of project against its
// current delegation (version currentVersion): shape, project, version current+1, expiry,
// the new keys (valid, no duplicates, 1 to MaxMaintainerKeys) and threshold (1 to the
// number of keys), that it changes something, and the signatures of the current
// maintainers (at least one; every signature present valid and by a current key).
func ValidateMaintainerChange(raw []byte, current ProjectDelegation, currentVersion int64, now time.Time) (*AcceptedChange, error) {
	if len(raw) > 256<<10 {
		return nil, api.Errorf(api.CodeTooLarge, "maintainer change is %d bytes; at most %d are allowed", len(raw), 256<<10)
	}
	if err := CheckJSON(raw, "maintainer change"); err != nil {
		return nil, err
	}
	var env struct {
		Signatures []metadata.Signature `json:"signatures"`
		Signed     json.RawMessage      `json:"signed"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || len(env.Signed) == 0 {
		return nil, api.Errorf(api.CodeMalformedMetadata, "maintainer change is not {\"signatures\": […], \"signed\": {…}}: %v", err)
	}
	var doc api.MaintainerChange
	dec = json.NewDecoder(bytes.NewReader(env.Signed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, api.Errorf(api.CodeMalformedMetadata, "maintainer change document does not parse: %v", err)
	}
	p := current.Name
	switch {
	case doc.Type != api.MaintainerChangeType:
		return nil, api.Errorf(api.CodeMalformedMetadata, "_type is %q, not %q", doc.Type, api.MaintainerChangeType)
	case doc.Project != p:
		return nil, api.Errorf(api.CodeMalformedMetadata, "the change is for project %q, not %q", doc.Project, p)
	case doc.Version != currentVersion+1:
		return nil, api.Errorf(api.CodeVersionConflict, "project %q's maintainers are at version %d, so the change must be version %d, not %d", p, currentVersion, currentVersion+1, doc.Version)
	case !doc.Expires.After(now):
		return nil, api.Errorf(api.CodeExpired, "the maintainer change expired at %s", FormatExpires(doc.Expires))
	case doc.Expires.After(now.Add(MaxMaintainerChangeLifetime)):
		return nil, api.Errorf(api.CodeExpiryTooFar, "the maintainer change expires at %s; at most %d days ahead is allowed", FormatExpires(doc.Expires), int(MaxMaintainerChangeLifetime.Hours()/24))
	case len(doc.Keys) == 0:
		return nil, api.Errorf(api.CodeInvalidThreshold, "a project needs at least one maintainer key: the change removes them all")
	case len(doc.Keys) > MaxMaintainerKeys:
		return nil, api.Errorf(api.CodeTooMany, "%d maintainer keys; at most %d are allowed", len(doc.Keys), MaxMaintainerKeys)
	case doc.Threshold < 1 || doc.Threshold > len(doc.Keys):
		return nil, api.Errorf(api.CodeInvalidThreshold, "threshold %d is not between 1 and the number of maintainer keys (%d)", doc.Threshold, len(doc.Keys))
	}
	nd := ProjectDelegation{Name: p, Keys: map[string]*metadata.Key{}, Threshold: doc.Threshold}
	seen := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(doc.Keys)) {
		k, err := KeyFromAPI(doc.Keys[id])
		if err != nil {
			return nil, api.Wrap(api.CodeInvalidKey, err, "key %s: %s", id, api.ProblemFor(err).Detail)
		}
		if got := KeyID(k); got != id {
			return nil, api.Errorf(api.CodeInvalidKey, "key listed as %s has key ID %s", id, got)
		}
		fp, err := Fingerprint(k)
		if err != nil {
			return nil, api.Wrap(api.CodeInvalidKey, err, "key %s is not usable", id)
		}
		if other, dup := seen[fp]; dup {
			return nil, api.Errorf(api.CodeInvalidKey, "keys %s and %s are the same public key", other, id)
		}
		seen[fp] = id
		nd.Keys[id] = k
		nd.KeyIDs = append(nd.KeyIDs, id)
	}
	if slices.Equal(nd.KeyIDs, sortedIDs(current)) && nd.Threshold == current.Threshold {
		return nil, api.Errorf(api.CodeBadRequest, "the change does not change the keys or the threshold of %q", p)
	}

	var generic any
	if err := json.Unmarshal(env.Signed, &generic); err != nil {
		return nil, api.Errorf(api.CodeMalformedMetadata, "maintainer change document does not parse: %v", err)
	}
	payload, err := Canonical(generic)
	if err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "maintainer change cannot be canonicalised")
	}
	acc := &AcceptedChange{Raw: raw, Signed: env.Signed, Doc: doc, New: nd, Threshold: current.Threshold}
	fps := map[string]bool{}
	for _, sig := range env.Signatures {
		k, ok := current.Keys[sig.KeyID]
		if !ok || !slices.Contains(current.KeyIDs, sig.KeyID) {
			return nil, api.Errorf(api.CodeKeyNotDelegated, "the change is signed by key %s, which is not one of %q's current maintainer keys %v", sig.KeyID, p, current.KeyIDs)
		}
		if err := VerifySignature(k, payload, sig.Signature); err != nil {
			return nil, api.Errorf(api.CodeSignatureInvalid, "the signature by key %s does not verify over this change: sign the exact document you submit", sig.KeyID)
		}
		fp, _ := Fingerprint(k)
		if fps[fp] {
			return nil, api.Errorf(api.CodeSignatureRepeated, "key %s signed the change twice", sig.KeyID)
		}
		fps[fp] = true
		acc.SignedBy = append(acc.SignedBy, sig.KeyID)
		acc.Signatures = append(acc.Signatures, sig)
	}
	if len(acc.SignedBy) == 0 {
		return nil, api.Errorf(api.CodeThresholdNotMet, "the maintainer change carries no signatures: sign it with a current maintainer key")
	}
	return acc, nil
}

func sortedIDs(d ProjectDelegation) []string {
	ids := slices.Clone(d.KeyIDs)
	slices.Sort(ids)
	return ids
}

// CheckRoleUnderDelegation verifies that a project role still meets a (new) delegation,
// so that a maintainer change never leaves clients unable to verify the published role.
func CheckRoleUnderDelegation(roleRaw []byte, d ProjectDelegation) error {
	md, err := metadata.Targets().FromBytes(roleRaw)
	if err != nil {
		return fmt.Errorf("parsing current role of %s: %w", d.Name, err)
	}
	if _, err := VerifyThreshold(md, d); err != nil {
		return api.Errorf(api.CodeThresholdNotMet, "the published role version %d of %q is not signed by %d of the new maintainer keys, so clients could no longer verify it: first publish a role version signed by the keys that stay (for example add the new key, upload, then remove the old one)", md.Signed.Version, d.Name, d.Threshold)
	}
	return nil
}
