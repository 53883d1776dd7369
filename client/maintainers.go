package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// MaintainerChangeExpiry is how long a maintainer change document written by
// NewMaintainerChange stays valid: long enough for co-signers, well within the server's
// tufrepo.MaxMaintainerChangeLifetime.
const MaintainerChangeExpiry = 7 * 24 * time.Hour

// MaintainerSet is a project's maintainer keys (key ID → key) and threshold.
type MaintainerSet struct {
	Keys      map[string]*metadata.Key
	Threshold int
}

// KeyIDs returns the set's key IDs, sorted.
func (s MaintainerSet) KeyIDs() []string { return slices.Sorted(maps.Keys(s.Keys)) }

// Clone returns a copy whose key map can be changed without touching s.
func (s MaintainerSet) Clone() MaintainerSet {
	return MaintainerSet{Keys: maps.Clone(s.Keys), Threshold: s.Threshold}
}

// Delegation is the set as the delegation of project.
func (s MaintainerSet) Delegation(project string) tufrepo.ProjectDelegation {
	return tufrepo.ProjectDelegation{Name: project, Keys: maps.Clone(s.Keys), KeyIDs: s.KeyIDs(), Threshold: s.Threshold}
}

// MaintainersOf is the verified delegation of a project role as a MaintainerSet.
func MaintainersOf(pr *ProjectRole) MaintainerSet {
	return delegatedSet(pr.KeyIDs, pr.Threshold, pr.Keys)
}

// delegatedSet is a delegation (its key IDs and threshold, the keys from the delegating
// metadata) as a MaintainerSet; key IDs without a key are left out.
func delegatedSet(keyIDs []string, threshold int, keys map[string]*metadata.Key) MaintainerSet {
	s := MaintainerSet{Keys: map[string]*metadata.Key{}, Threshold: threshold}
	for _, id := range keyIDs {
		if k, ok := keys[id]; ok {
			s.Keys[id] = k
		}
	}
	return s
}

// CheckMaintainerSet applies the rules every maintainer set must follow, as the server
// does: 1 to tufrepo.MaxMaintainerKeys valid keys listed under their own key IDs, no public
// key twice, and a threshold between 1 and the number of keys.
func CheckMaintainerSet(project string, s MaintainerSet) error {
	switch {
	case len(s.Keys) == 0:
		return api.Errorf(api.CodeInvalidThreshold, "project %s would be left without maintainer keys: a project needs at least one; add the new key first, then remove the old one", project)
	case len(s.Keys) > tufrepo.MaxMaintainerKeys:
		return api.Errorf(api.CodeTooMany, "project %s would have %d maintainer keys; at most %d are allowed", project, len(s.Keys), tufrepo.MaxMaintainerKeys)
	case s.Threshold < 1:
		return api.Errorf(api.CodeInvalidThreshold, "threshold %d is not possible: at least one maintainer must sign", s.Threshold)
	case s.Threshold > len(s.Keys):
		return api.Errorf(api.CodeInvalidThreshold, "threshold %d is not possible with %d maintainer key(s): nobody could ever sign for %s; use 1 to %d", s.Threshold, len(s.Keys), project, len(s.Keys))
	}
	seen := map[string]string{}
	for _, id := range s.KeyIDs() {
		k := s.Keys[id]
		if got := tufrepo.KeyID(k); got != id {
			return api.Errorf(api.CodeInvalidKey, "key listed as %s has key ID %s", id, got)
		}
		fp, err := tufrepo.Fingerprint(k)
		if err != nil {
			return api.Wrap(api.CodeInvalidKey, err, "key %s is not usable: %v", id, err)
		}
		if other, dup := seen[fp]; dup {
			return api.Errorf(api.CodeInvalidKey, "keys %s and %s are the same public key", other, id)
		}
		seen[fp] = id
	}
	return nil
}

// KeyView describes one key for people: its ID, type and fingerprint.
type KeyView struct {
	KeyID       string `json:"keyid"`
	KeyType     string `json:"keytype"`
	Fingerprint string `json:"fingerprint"`
}

// ViewKey describes k.
func ViewKey(k *metadata.Key) KeyView {
	v := KeyView{KeyID: tufrepo.KeyID(k), KeyType: k.Type}
	if fp, err := tufrepo.Fingerprint(k); err == nil {
		v.Fingerprint = fp
	}
	return v
}

// MaintainerDiff is what a maintainer change does, in terms a maintainer can review.
type MaintainerDiff struct {
	Project string `json:"project"`
	// Version is the change's version (the project's delegation version + 1).
	Version         int64     `json:"version"`
	Added           []KeyView `json:"added,omitempty"`
	Removed         []KeyView `json:"removed,omitempty"`
	Kept            []KeyView `json:"kept,omitempty"`
	ThresholdBefore int       `json:"threshold_before"`
	ThresholdAfter  int       `json:"threshold_after"`
	Expires         time.Time `json:"expires,omitzero"`
}

// DiffMaintainers compares the new set with the current one.
func DiffMaintainers(project string, version int64, before, after MaintainerSet) MaintainerDiff {
	d := MaintainerDiff{Project: project, Version: version, ThresholdBefore: before.Threshold, ThresholdAfter: after.Threshold}
	for _, id := range after.KeyIDs() {
		if _, ok := before.Keys[id]; ok {
			d.Kept = append(d.Kept, ViewKey(after.Keys[id]))
		} else {
			d.Added = append(d.Added, ViewKey(after.Keys[id]))
		}
	}
	for _, id := range before.KeyIDs() {
		if _, ok := after.Keys[id]; !ok {
			d.Removed = append(d.Removed, ViewKey(before.Keys[id]))
		}
	}
	return d
}

// Empty reports whether the change changes neither the keys nor the threshold.
func (d MaintainerDiff) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && d.ThresholdBefore == d.ThresholdAfter
}

// Lines says in words what the change does, one statement a line.
func (d MaintainerDiff) Lines() []string {
	var out []string
	for _, k := range d.Added {
		out = append(out, fmt.Sprintf("ADDS maintainer key %s (%s, fingerprint %s)", k.KeyID, k.KeyType, k.Fingerprint))
	}
	for _, k := range d.Removed {
		out = append(out, fmt.Sprintf("REMOVES maintainer key %s (%s, fingerprint %s)", k.KeyID, k.KeyType, k.Fingerprint))
	}
	for _, k := range d.Kept {
		out = append(out, fmt.Sprintf("keeps maintainer key %s (%s, fingerprint %s)", k.KeyID, k.KeyType, k.Fingerprint))
	}
	n := len(d.Added) + len(d.Kept)
	switch {
	case d.ThresholdBefore != d.ThresholdAfter:
		out = append(out, fmt.Sprintf("CHANGES the threshold from %d to %d: %d of the %d maintainer keys must sign every release", d.ThresholdBefore, d.ThresholdAfter, d.ThresholdAfter, n))
	default:
		out = append(out, fmt.Sprintf("keeps the threshold at %d: %d of the %d maintainer keys must sign every release", d.ThresholdAfter, d.ThresholdAfter, n))
	}
	return out
}

// NewMaintainerChange writes the maintainer change document that gives project the keys
// and threshold of set, as version (the project's delegation version + 1), expiring at
// expires (whole seconds, UTC).
func NewMaintainerChange(project string, version int64, set MaintainerSet, expires time.Time) api.MaintainerChange {
	doc := api.MaintainerChange{Type: api.MaintainerChangeType, Project: project, Version: version, Keys: map[string]api.Key{}, Threshold: set.Threshold, Expires: expires.UTC().Truncate(time.Second)}
	for id, k := range set.Keys {
		doc.Keys[id] = tufrepo.KeyToAPI(k)
	}
	return doc
}

// changePayload is what maintainers sign for a change: the canonical JSON of the generic
// JSON value of "signed", exactly as the server recomputes it.
func changePayload(signed []byte) ([]byte, error) {
	var generic any
	if err := json.Unmarshal(signed, &generic); err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "the maintainer change document does not parse: %v", err)
	}
	return tufrepo.Canonical(generic)
}

// SignMaintainerChange signs doc with each signer and returns the document to post: the
// canonical JSON of doc as "signed", with the signatures.
func SignMaintainerChange(ctx context.Context, doc api.MaintainerChange, signers ...signature.Signer) ([]byte, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	signed, err := changePayload(b)
	if err != nil {
		return nil, err
	}
	sigs := make([]metadata.Signature, 0, len(signers))
	for _, s := range signers {
		o, err := tufrepo.NewOnlineSigner(ctx, s)
		if err != nil {
			return nil, err
		}
		sig, err := o.Sign(ctx, signed)
		if err != nil {
			return nil, fmt.Errorf("signing maintainer change %d of %s: %w", doc.Version, doc.Project, err)
		}
		sigs = append(sigs, sig)
	}
	return tufrepo.Envelope(signed, sigs), nil
}

// SignedMaintainerChange is a parsed maintainer change document with its signatures.
type SignedMaintainerChange struct {
	Doc        api.MaintainerChange
	Set        MaintainerSet
	Signatures []metadata.Signature
	// Payload is the canonical JSON that was (or is to be) signed.
	Payload []byte
}

// ParseMaintainerChange parses a maintainer change document ({"signatures", "signed"}),
// as posted or as a proposal's metadata holds it. Keys are checked to be valid and listed
// under their own key IDs; signatures are not verified (CheckChangeSignatures does that).
func ParseMaintainerChange(raw []byte) (*SignedMaintainerChange, error) {
	if err := tufrepo.CheckJSON(raw, "the maintainer change"); err != nil {
		return nil, err
	}
	var env struct {
		Signatures []metadata.Signature `json:"signatures"`
		Signed     json.RawMessage      `json:"signed"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Signed) == 0 {
		return nil, api.Errorf(api.CodeMalformedMetadata, "the maintainer change is not {\"signatures\": […], \"signed\": {…}}")
	}
	var doc api.MaintainerChange
	dec := json.NewDecoder(bytes.NewReader(env.Signed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "the maintainer change document does not parse: %v", err)
	}
	if doc.Type != api.MaintainerChangeType {
		return nil, api.Errorf(api.CodeMalformedMetadata, "the document's _type is %q, not %q", doc.Type, api.MaintainerChangeType)
	}
	payload, err := changePayload(env.Signed)
	if err != nil {
		return nil, err
	}
	c := &SignedMaintainerChange{Doc: doc, Signatures: env.Signatures, Payload: payload, Set: MaintainerSet{Keys: map[string]*metadata.Key{}, Threshold: doc.Threshold}}
	for id, w := range doc.Keys {
		k, err := tufrepo.KeyFromAPI(w)
		if err != nil {
			return nil, api.Wrap(api.CodeInvalidKey, err, "key %s of the maintainer change: %v", id, err)
		}
		if got := tufrepo.KeyID(k); got != id {
			return nil, api.Errorf(api.CodeInvalidKey, "the maintainer change lists key %s whose key ID is %s", id, got)
		}
		c.Set.Keys[id] = k
	}
	return c, nil
}

// ParseMaintainerProposal parses an open proposal of kind api.KindMaintainers and checks
// that it is what the listing says: the project and the version.
func ParseMaintainerProposal(p api.Proposal) (*SignedMaintainerChange, error) {
	if p.Kind != api.KindMaintainers {
		return nil, api.Errorf(api.CodeBadRequest, "proposal %d of %s is of kind %q, not a maintainer change", p.Version, p.Project, p.Kind)
	}
	c, err := ParseMaintainerChange(p.Metadata)
	if err != nil {
		return nil, err
	}
	if c.Doc.Project != p.Project || c.Doc.Version != p.Version {
		return nil, api.Errorf(api.CodeMalformedMetadata, "the proposal listed as maintainer change %d of %s holds change %d of %s", p.Version, p.Project, c.Doc.Version, c.Doc.Project)
	}
	return c, nil
}

// ChangeSignatures sorts a change's signatures against the current maintainers: Valid (a
// current maintainer key, verifies), Invalid (a current key, does not verify over this
// document) and Untrusted (not a current maintainer key).
type ChangeSignatures struct {
	Valid     []string `json:"valid"`
	Invalid   []string `json:"invalid,omitempty"`
	Untrusted []string `json:"untrusted,omitempty"`
}

// CheckChangeSignatures verifies each signature of c locally against the current
// maintainer set, trusting nothing the server says about who signed.
func CheckChangeSignatures(c *SignedMaintainerChange, current MaintainerSet) ChangeSignatures {
	var out ChangeSignatures
	seen := map[string]bool{}
	for _, s := range c.Signatures {
		if seen[s.KeyID] {
			continue
		}
		seen[s.KeyID] = true
		k, ok := current.Keys[s.KeyID]
		switch {
		case !ok:
			out.Untrusted = append(out.Untrusted, s.KeyID)
		case tufrepo.VerifySignature(k, c.Payload, s.Signature) != nil:
			out.Invalid = append(out.Invalid, s.KeyID)
		default:
			out.Valid = append(out.Valid, s.KeyID)
		}
	}
	return out
}

// SignMaintainerProposal signs an open maintainer change (its canonical "signed" value)
// and returns the key ID and hex signature for CoSignMaintainerChange.
func SignMaintainerProposal(ctx context.Context, c *SignedMaintainerChange, s signature.Signer) (keyID, sigHex string, err error) {
	o, err := tufrepo.NewOnlineSigner(ctx, s)
	if err != nil {
		return "", "", err
	}
	sig, err := o.Sign(ctx, c.Payload)
	if err != nil {
		return "", "", fmt.Errorf("signing maintainer change %d of %s: %w", c.Doc.Version, c.Doc.Project, err)
	}
	return sig.KeyID, hex.EncodeToString(sig.Signature), nil
}

// ChangeMaintainers posts a signed maintainer change document (SignMaintainerChange) of
// project. The result's Status is "applied" (a recently-claimed project: published, 201,
// or staged if wait ended first, 202), "queued" (a claimed project: waits for the admins'
// next signing of claimed) or "pending" (more maintainers must co-sign).
func (a *API) ChangeMaintainers(ctx context.Context, project string, raw []byte, wait time.Duration) (api.MaintainerChangeResult, int, error) {
	var res api.MaintainerChangeResult
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return res, 0, err
	}
	status, err := a.do(ctx, request{
		method: http.MethodPost, url: a.endpoint(waitQuery(wait), "api", "v1", "projects", project, "maintainers"),
		body: bytes.NewReader(raw), size: int64(len(raw)), contentType: api.MediaJSON, auth: true, out: &res,
	})
	if err != nil {
		return res, status, fmt.Errorf("submitting a maintainer change of project %q: %w", project, err)
	}
	return res, status, nil
}

// CoSignMaintainerChange adds one maintainer's signature (SignMaintainerProposal) to the
// open maintainer change version of project. The answer is as for ChangeMaintainers.
func (a *API) CoSignMaintainerChange(ctx context.Context, project string, version int64, keyID, sigHex string, wait time.Duration) (api.MaintainerChangeResult, int, error) {
	var res api.MaintainerChangeResult
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return res, 0, err
	}
	if version < 1 {
		return res, 0, api.Errorf(api.CodeBadRequest, "maintainer change version %d is not a positive integer", version)
	}
	if err := ValidateSHA256Hex(keyID); err != nil {
		return res, 0, api.Errorf(api.CodeBadRequest, "key ID %q is not 64 lowercase hex digits", keyID)
	}
	if b, err := hex.DecodeString(sigHex); err != nil || len(b) == 0 {
		return res, 0, api.Errorf(api.CodeBadRequest, "the signature must be non-empty hex")
	}
	body, size, err := jsonBody(api.CoSignRequest{KeyID: keyID, Sig: sigHex})
	if err != nil {
		return res, 0, err
	}
	q := waitQuery(wait)
	if q == nil {
		q = url.Values{}
	}
	q.Set("kind", api.KindMaintainers)
	status, err := a.do(ctx, request{
		method: http.MethodPost, url: a.endpoint(q, "api", "v1", "projects", project, "pending", strconv.FormatInt(version, 10), "signatures"),
		body: body, size: size, contentType: api.MediaJSON, auth: true, out: &res,
	})
	if err != nil {
		return res, status, fmt.Errorf("co-signing maintainer change %d of project %q: %w", version, project, err)
	}
	return res, status, nil
}

// CheckServerProject compares what the server's REST API says about a project's
// delegation with the delegation verified through TUF (pr), and returns an error naming
// the difference. A change the server has applied but not yet published is reported as
// such (CodeVersionConflict: try again shortly).
func CheckServerProject(p api.Project, pr *ProjectRole) error {
	var diffs []string
	if p.Delegator != pr.Tree {
		diffs = append(diffs, fmt.Sprintf("the server says %s delegates to it, the verified metadata says %s", orNone(p.Delegator), orNone(pr.Tree)))
	}
	if p.Threshold != pr.Threshold {
		diffs = append(diffs, fmt.Sprintf("the server says threshold %d, the verified metadata says %d", p.Threshold, pr.Threshold))
	}
	server := map[string]string{}
	for _, m := range p.Maintainers {
		server[m.KeyID] = m.Public
	}
	for _, id := range pr.KeyIDs {
		pub, ok := server[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("the verified metadata trusts key %s, which the server does not list", short(id)))
		case pr.Keys[id] == nil || pub != pr.Keys[id].Value.PublicKey:
			diffs = append(diffs, fmt.Sprintf("the server lists key %s with a different public key than the verified metadata", short(id)))
		}
	}
	for _, m := range p.Maintainers {
		if !slices.Contains(pr.KeyIDs, m.KeyID) {
			diffs = append(diffs, fmt.Sprintf("the server lists key %s, which the verified metadata does not trust", short(m.KeyID)))
		}
	}
	if len(diffs) == 0 {
		if !p.Delegated {
			return api.Errorf(api.CodeVersionConflict, "the server has not yet published the current maintainers of %s (delegation version %d): try again in a moment", p.Name, p.DelegationVersion)
		}
		return nil
	}
	if !p.Delegated {
		return api.Errorf(api.CodeVersionConflict, "a maintainer change of %s (delegation version %d) is not published yet (%s): try again once it is", p.Name, p.DelegationVersion, strings.Join(diffs, "; "))
	}
	return api.Errorf(api.CodeVersionConflict, "the server's record of the maintainers of %s disagrees with the TUF metadata verified through snapshot %d: %s. Nothing was signed: a change must be built on what clients verify; if this persists, tell the repository administrators",
		p.Name, pr.SnapshotVersion, strings.Join(diffs, "; "))
}

func orNone(s string) string {
	if s == "" {
		return "no role"
	}
	return s
}
