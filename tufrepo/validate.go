package tufrepo

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/canonjson"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// PublishedFile is a target path accepted earlier, which may never change.
type PublishedFile struct {
	Length int64
	SHA256 string          // hex
	Custom json.RawMessage // as last accepted; may change (yanking)
}

// ProjectState is what the server knows of a project when a new role version arrives.
type ProjectState struct {
	Delegation     ProjectDelegation
	CurrentVersion int64                    // 0 for a new project
	Files          map[string]PublishedFile // every path accepted so far
}

// NewFile is a target that a role version adds.
type NewFile struct {
	Path     string
	Version  string
	Filename string
	Length   int64
	SHA256   string
	Custom   json.RawMessage
}

// AcceptedRole is a project role version that passed every check.
type AcceptedRole struct {
	Raw     []byte
	Version int64
	Expires time.Time
	// NewFiles are the targets this version adds; ChangedCustom the earlier targets whose
	// custom data (e.g. the yanked flag) it changes.
	NewFiles      []NewFile
	ChangedCustom []NewFile
	// SignedBy are the key IDs whose signatures verified (one per distinct key),
	// Signatures those signatures, Signed the exact bytes of "signed" they cover.
	SignedBy   []string
	Signatures []metadata.Signature
	Signed     json.RawMessage
	Threshold  int
}

// Complete reports whether the threshold of maintainer signatures is met: the version can
// be staged. Otherwise it is a proposal waiting for co-signers.
func (a *AcceptedRole) Complete() bool { return len(a.SignedBy) >= a.Threshold }

// BlobSizes returns the size of each blob (by lowercase hex sha256) that is present; absent
// blobs are missing from the map.
type BlobSizes func(sha256s []string) (map[string]int64, error)

// ValidateProjectRole checks a submitted version of a project role (DESIGN.md "The upload
// transaction", step 4) against the project's current state, in this order so that the
// error names the first thing to fix: parse (strictly: one reading for every JSON parser),
// version, expiry, no delegations, paths, files (immutability, blobs, lengths, hashes),
// signatures (every one valid and by a maintainer key) and threshold. It returns
// *api.Error with a specific code for every refusal.
func ValidateProjectRole(raw []byte, st ProjectState, now time.Time, blobs BlobSizes) (*AcceptedRole, error) {
	acc, err := ValidateProposal(raw, st, now, blobs)
	if err != nil {
		return nil, err
	}
	if !acc.Complete() {
		return nil, api.Errorf(api.CodeThresholdNotMet, "project role %q has %d of the %d maintainer signatures required", st.Delegation.Name, len(acc.SignedBy), st.Delegation.Threshold)
	}
	return acc, nil
}

// ValidateProposal runs every check of ValidateProjectRole but accepts fewer than the
// threshold of signatures (at least one): the result may be a proposal that co-signers
// complete (AcceptedRole.Complete). Every signature present must be valid and by a
// delegated key, even when the threshold is met (CheckAllSignatures says why).
func ValidateProposal(raw []byte, st ProjectState, now time.Time, blobs BlobSizes) (*AcceptedRole, error) {
	return ValidateRead(ReadProposal(raw, st.Delegation.Name), st, now, blobs)
}

// ValidateRead is ValidateProposal for a document ReadProposal has read: the same checks
// in the same order, so a document that does not read is refused only after the caller
// has found the project.
func ValidateRead(p *Proposal, st ProjectState, now time.Time, blobs BlobSizes) (*AcceptedRole, error) {
	acc, pr, err := checkProjectRole(p, st, now, blobs)
	if err != nil {
		return nil, err
	}
	d := st.Delegation
	what := fmt.Sprintf("project role %q version %d", d.Name, acc.Version)
	allowed := make(map[string]*metadata.Key, len(d.KeyIDs))
	for _, id := range d.KeyIDs {
		if k, ok := d.Keys[id]; ok {
			allowed[id] = k
		}
	}
	if err := CheckAllSignatures(what, pr.Payload, pr.Signatures, allowed); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for _, sig := range pr.Signatures {
		acc.SignedBy = append(acc.SignedBy, sig.KeyID)
		if len(pr.Signatures) == 1 {
			break // one signature cannot repeat a public key
		}
		fp, err := Fingerprint(d.Keys[sig.KeyID])
		if err != nil {
			return nil, api.Wrap(api.CodeInvalidKey, err, "%s: maintainer key %s is not usable", what, sig.KeyID)
		}
		if other, dup := seen[fp]; dup {
			return nil, api.Errorf(api.CodeSignatureRepeated, "%s is signed twice by one public key, under key IDs %s and %s: keep one signature", what, other, sig.KeyID)
		}
		seen[fp] = sig.KeyID
	}
	if len(acc.SignedBy) == 0 {
		return nil, api.Errorf(api.CodeThresholdNotMet, "project role %q carries no signatures: sign it with a maintainer key", d.Name)
	}
	// No second verification through go-tuf's VerifyDelegate here (it was 13% of cairnd's
	// CPU per upload, with one more canonical encoding): every signature has just been
	// verified over Payload, which is go-tuf's canonical encoding of go-tuf's reading of the
	// document (readProjectRole; tested byte for byte against go-tuf) and also that of the
	// plain reading; maintainer keys are only ed25519 and ECDSA P-256 with SHA-256
	// (KeyFromAPI), for which go-tuf picks the same verifier; and the threshold counts
	// distinct public keys, as go-tuf does. differential_test.go keeps go-tuf (and tuf-js)
	// as the oracle over hostile documents.
	acc.Signatures = pr.Signatures
	return acc, nil
}

// checkProjectRole runs every check but the signatures.
func checkProjectRole(p *Proposal, st ProjectState, now time.Time, blobs BlobSizes) (*AcceptedRole, *projectRole, error) {
	project := st.Delegation.Name
	if p.err != nil {
		return nil, nil, p.err
	}
	pr, raw := p.pr, p.raw
	s := &pr.Signed
	if !strings.HasPrefix(s.SpecVersion, "1.") {
		return nil, nil, api.Errorf(api.CodeMalformedMetadata, "spec_version %q is not supported: use %s", s.SpecVersion, SpecVersion)
	}
	if want := st.CurrentVersion + 1; s.Version != want {
		return nil, nil, api.Errorf(api.CodeVersionConflict, "project %q is at role version %d, so the next version must be %d, not %d: refresh and sign the next version", project, st.CurrentVersion, want, s.Version)
	}
	if s.Expires.Before(now.Add(MinProjectRoleLifetime)) {
		return nil, nil, api.Errorf(api.CodeExpired, "project role version %d expires at %s, which is in the past or less than %s from now", s.Version, FormatExpires(s.Expires), MinProjectRoleLifetime)
	}
	if s.Expires.After(now.Add(MaxProjectRoleExpiry)) {
		return nil, nil, api.Errorf(api.CodeExpiryTooFar, "project role version %d expires at %s; at most %d days ahead is allowed", s.Version, FormatExpires(s.Expires), int(MaxProjectRoleExpiry.Hours()/24))
	}
	if s.Delegations != nil {
		return nil, nil, api.Errorf(api.CodeDelegationForbidden, "project role %q may not delegate: remove \"delegations\"", project)
	}
	if n := len(s.Targets); n > MaxTargetsPerRole {
		return nil, nil, api.Errorf(api.CodeTooMany, "project role lists %d targets; at most %d are allowed", n, MaxTargetsPerRole)
	}

	acc := &AcceptedRole{Raw: raw, Version: s.Version, Expires: s.Expires}
	if err := checkNoneRemoved(st.Files, s.Targets); err != nil {
		return nil, nil, err
	}
	var want []string
	tags := map[string][]string{} // OCI release tag -> the distinct versions that map to it
	// s.Targets are sorted by path.
	for i := range s.Targets {
		tf := &s.Targets[i]
		p := tf.Path
		version, filename, err := SplitTargetPath(project, p)
		if err != nil {
			return nil, nil, err
		}
		if t := api.ReleaseTag(version); !slices.Contains(tags[t], version) {
			tags[t] = append(tags[t], version)
		}
		sum, err := targetSHA256(p, tf.Hashes)
		if err != nil {
			return nil, nil, err
		}
		var hexSum [2 * sha256.Size]byte
		hex.Encode(hexSum[:], sum)
		if tf.Length < 0 {
			return nil, nil, api.Errorf(api.CodeLengthMismatch, "target %q has negative length %d", p, tf.Length)
		}
		custom := tf.Custom
		if len(custom) > MaxCustomBytes {
			return nil, nil, api.Errorf(api.CodeTooLarge, "custom data of target %q is %d bytes; at most %d are allowed", p, len(custom), MaxCustomBytes)
		}
		if old, ok := st.Files[p]; ok {
			if old.Length != tf.Length || old.SHA256 != string(hexSum[:]) {
				return nil, nil, api.Errorf(api.CodeImmutablePath, "target %q was published with length %d and sha256 %s and may not change: upload a new release version instead", p, old.Length, old.SHA256)
			}
			if !jsonEqual(old.Custom, custom) {
				acc.ChangedCustom = append(acc.ChangedCustom, NewFile{Path: p, Version: version, Filename: filename, Length: tf.Length, SHA256: old.SHA256, Custom: custom})
			}
			continue
		}
		acc.NewFiles = append(acc.NewFiles, NewFile{Path: p, Version: version, Filename: filename, Length: tf.Length, SHA256: string(hexSum[:]), Custom: custom})
		want = append(want, acc.NewFiles[len(acc.NewFiles)-1].SHA256)
	}
	if err := checkReleaseTags(project, tags, st.Files, acc.NewFiles); err != nil {
		return nil, nil, err
	}
	if len(want) > 0 {
		sizes, err := blobs(want)
		if err != nil {
			return nil, nil, fmt.Errorf("looking up blobs: %w", err)
		}
		for _, f := range acc.NewFiles {
			size, ok := sizes[f.SHA256]
			if !ok {
				return nil, nil, api.Errorf(api.CodeBlobMissing, "target %q refers to blob sha256:%s, which was not uploaded: PUT it to /api/v1/blobs/sha256:%s first", f.Path, f.SHA256, f.SHA256)
			}
			if size != f.Length {
				return nil, nil, api.Errorf(api.CodeLengthMismatch, "target %q gives length %d but blob sha256:%s is %d bytes", f.Path, f.Length, f.SHA256, size)
			}
		}
	}

	acc.Signed, acc.Threshold = pr.SignedRaw, st.Delegation.Threshold
	return acc, pr, nil
}

// checkNoneRemoved refuses a role version that drops a published path; the error names the
// first such path in sorted order. targets are sorted by path.
func checkNoneRemoved(published map[string]PublishedFile, targets []projectTarget) error {
	kept := 0
	for i := range targets {
		if _, ok := published[targets[i].Path]; ok {
			kept++
		}
	}
	if kept == len(published) {
		return nil
	}
	for _, p := range slices.Sorted(maps.Keys(published)) {
		if _, ok := slices.BinarySearchFunc(targets, p, func(t projectTarget, p string) int { return strings.Compare(t.Path, p) }); !ok {
			return api.Errorf(api.CodeImmutablePath, "target %q was published before and may not be removed: keep it (yank the release instead)", p)
		}
	}
	return nil
}

// checkReleaseTags refuses a role version that adds files to a release whose OCI tag
// (api.ReleaseTag: "+" becomes "_") is also the tag of another release of the project, such
// as 3.0+x next to 3.0_x: the registry serves one manifest per tag, so the second would
// be unreachable over OCI, or worse, the tag would name one release or the other. tags
// maps each tag to the versions of the role that map to it (all of them, old and new).
// Only versions the role adds files to are checked: a collision that an older server
// accepted stays readable (the registry serves the first published release of the tag)
// and does not block the project's next uploads.
func checkReleaseTags(project string, tags map[string][]string, published map[string]PublishedFile, added []NewFile) error {
	for _, f := range added {
		t := api.ReleaseTag(f.Version)
		for _, other := range tags[t] {
			if other == f.Version {
				continue
			}
			if publishedVersion(project, other, published) {
				return api.Errorf(api.CodeOCITagCollision, "release %s %s would be the OCI tag %s:%s, which is already the tag of release %s %s (\"+\" becomes \"_\" in OCI tags): choose a version that differs from %s in more than + and _", project, f.Version, project, t, project, other, other)
			}
			return api.Errorf(api.CodeOCITagCollision, "releases %s %s and %s %s would both be the OCI tag %s:%s (\"+\" becomes \"_\" in OCI tags): upload only one of them", project, min(f.Version, other), project, max(f.Version, other), project, t)
		}
	}
	return nil
}

// publishedVersion reports whether a file of release version was published (only asked
// when tags collide, so the published files are not split on every upload).
func publishedVersion(project, version string, published map[string]PublishedFile) bool {
	for p := range published {
		if v, _, err := SplitTargetPath(project, p); err == nil && v == version {
			return true
		}
	}
	return false
}

// jsonEqual compares two JSON values by meaning, not bytes (custom data read back from
// PostgreSQL's jsonb has other whitespace than the document it came from).
func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	if bytes.Equal(a, b) {
		return true
	}
	ca, err1 := canonjson.Canonical(a)
	cb, err2 := canonjson.Canonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// targetSHA256 returns the one sha256 a target lists. Cairn stores files under sha256 only:
// clients pick a listed hash at random, so any other algorithm would be a broken URL.
func targetSHA256(path string, hashes []targetHash) ([]byte, error) {
	if len(hashes) != 1 {
		return nil, api.Errorf(api.CodeHashMismatch, "target %q lists %d hashes; list exactly one, sha256", path, len(hashes))
	}
	if h := hashes[0]; h.Alg != "sha256" || len(h.Sum) != sha256.Size {
		return nil, api.Errorf(api.CodeHashMismatch, "target %q must list a 32-byte sha256 hash", path)
	}
	return hashes[0].Sum, nil
}

// VerifyThreshold checks md's signatures against a delegation and returns the key IDs that
// signed validly. Signatures are counted by distinct key; it distinguishes a signature by a
// key the project does not delegate to (key_not_delegated) from a delegated key's signature
// that does not verify (signature_invalid), then confirms with go-tuf's own verification so
// the server never accepts what a client would refuse.
func VerifyThreshold(md *metadata.Metadata[metadata.TargetsType], d ProjectDelegation) ([]string, error) {
	valid, unknown, bad, err := countSignatures(md, d)
	if err != nil {
		return nil, err
	}
	if len(valid) < d.Threshold {
		return nil, signatureError(d, valid, unknown, bad)
	}
	if err := goTUFVerify(md, d); err != nil {
		return nil, err
	}
	return valid, nil
}

// goTUFVerify checks md against d with go-tuf's own VerifyDelegate, so the server never
// accepts what a client would refuse.
func goTUFVerify(md *metadata.Metadata[metadata.TargetsType], d ProjectDelegation) error {
	delegator := metadata.Targets()
	delegator.Signed.Delegations = &metadata.Delegations{Keys: d.Keys, Roles: []metadata.DelegatedRole{{Name: d.Name, KeyIDs: d.KeyIDs, Threshold: d.Threshold, Paths: []string{ProjectPathPattern(d.Name)}}}}
	if err := delegator.VerifyDelegate(d.Name, md); err != nil {
		return api.Wrap(api.CodeSignatureInvalid, err, "project role %q: signatures do not verify for TUF clients: %v", d.Name, err)
	}
	return nil
}

// countSignatures sorts md's signatures into valid (by a delegated key, verified, one per
// distinct public key as go-tuf counts them), unknown (key not delegated) and bad (a
// delegated key's signature that does not verify).
func countSignatures(md *metadata.Metadata[metadata.TargetsType], d ProjectDelegation) (valid, unknown, bad []string, err error) {
	payload, err := Canonical(md.Signed)
	if err != nil {
		return nil, nil, nil, api.Wrap(api.CodeMalformedMetadata, err, "project role %q cannot be canonicalised", d.Name)
	}
	seen := map[string]bool{}
	for _, sig := range md.Signatures {
		k, ok := d.Keys[sig.KeyID]
		if !ok || !slices.Contains(d.KeyIDs, sig.KeyID) {
			unknown = append(unknown, sig.KeyID)
			continue
		}
		if err := VerifySignature(k, payload, sig.Signature); err != nil {
			bad = append(bad, sig.KeyID)
			continue
		}
		fp, err := Fingerprint(k)
		if err != nil || seen[fp] {
			continue
		}
		seen[fp] = true
		valid = append(valid, sig.KeyID)
	}
	return valid, unknown, bad, nil
}

// signatureError explains why the signatures fall short, naming the first key to blame.
func signatureError(d ProjectDelegation, valid, unknown, bad []string) error {
	switch {
	case len(bad) > 0:
		return api.Errorf(api.CodeSignatureInvalid, "project role %q: the signature by key %s does not verify over this metadata: sign the exact bytes you submit", d.Name, bad[0])
	case len(unknown) > 0 && len(valid) == 0:
		return api.Errorf(api.CodeKeyNotDelegated, "project role %q is signed by key %s, which is not one of the project's maintainer keys %v", d.Name, unknown[0], d.KeyIDs)
	case len(valid) == 0:
		return api.Errorf(api.CodeThresholdNotMet, "project role %q carries no signatures: sign it with a maintainer key", d.Name)
	}
	return api.Errorf(api.CodeThresholdNotMet, "project role %q has %d of the %d maintainer signatures required", d.Name, len(valid), d.Threshold)
}

// VerifySignature checks one TUF signature by k over payload (ECDSA over SHA-256, Ed25519
// over the payload itself).
func VerifySignature(k *metadata.Key, payload, sig []byte) error {
	pub, err := k.ToPublicKey()
	if err != nil {
		return err
	}
	hash := crypto.SHA256
	if ed, ok := pub.(ed25519.PublicKey); ok {
		// What sigstore's ED25519Verifier does, without copying payload through a reader.
		if len(ed) != ed25519.PublicKeySize || !ed25519.Verify(ed, payload, sig) {
			return errors.New("failed to verify ed25519 signature")
		}
		return nil
	}
	v, err := signature.LoadVerifier(pub, hash)
	if err != nil {
		return err
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload))
}
