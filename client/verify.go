package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// roleHints find the role that a go-tuf message is about. go-tuf names it only in the
// text; the last fetched file is the fallback.
var roleHints = []struct {
	re   *regexp.Regexp
	role string // fixed role, or "" to take the first submatch
}{
	{regexp.MustCompile(`Verifying (\S+) failed`), ""},
	{regexp.MustCompile(`final root\.json is expired`), tufrepo.RoleRoot},
	{regexp.MustCompile(`(timestamp|snapshot)\.json is expired`), ""},
	{regexp.MustCompile(`new (\S+) is expired`), ""},
	{regexp.MustCompile(`new (timestamp|snapshot) version`), ""},
	{regexp.MustCompile(`expected \S+\.json version`), tufrepo.RoleSnapshot}, // a role's version went back in snapshot meta
	{regexp.MustCompile(`expected (\S+) version \d+, got`), ""},
	{regexp.MustCompile(`bad version number, expected`), tufrepo.RoleRoot},
	{regexp.MustCompile(`error: expected \d+, got \d+`), tufrepo.RoleSnapshot},
	{regexp.MustCompile(`new snapshot is missing info`), tufrepo.RoleSnapshot},
}

// failedRole names the role an updater error is about.
func (r *Repo) failedRole(err error) (role, url string) {
	msg := err.Error()
	for _, h := range roleHints {
		if m := h.re.FindStringSubmatch(msg); m != nil {
			role = h.role
			if role == "" {
				role = m[1]
			}
			_, url = r.fetch.lastBody(role)
			return role, url
		}
	}
	if f, ok := r.fetch.last(); ok {
		return f.role, f.url
	}
	return "", ""
}

// tufError turns an error of go-tuf's updater into a *VerifyError that names the role and
// carries the exit code; network and other errors are wrapped with what was being done.
func (r *Repo) tufError(err error, doing string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	code, ok := tufExitCode(err)
	if !ok || code == ExitFailure {
		return fmt.Errorf("%s: %w", doing, err)
	}
	role, url := r.failedRole(err)
	ve := &VerifyError{Code: code, Role: role, Err: err}
	from := ""
	if url != "" {
		from = " (" + url + ")"
	}
	switch {
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		ve.Code, ve.Detail = r.classifySignatures(role)
	case code == ExitHashMismatch:
		ve.Detail = "the downloaded metadata" + from + " does not have the length or hashes that trusted metadata lists for it"
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		ve.Detail = "the metadata has expired; the repository must re-sign it (or this computer's clock is wrong)"
	case code == ExitPolicy:
		ve.Detail = "the metadata" + from + " is older than, or inconsistent with, metadata this client already trusts: a possible rollback or freeze attack"
	default:
		ve.Detail = "the metadata" + from + " is malformed"
	}
	return ve
}

// classifySignatures tells apart the two ways a role can fail its threshold: a signature
// by a trusted key that does not verify (ExitSignatureInvalid), or signatures by keys the
// delegating role does not trust for it (ExitKeyNotTrusted). It re-checks the offending
// file's signatures one by one against the delegator's keys.
func (r *Repo) classifySignatures(role string) (ExitCode, string) {
	raw, _ := r.fetch.lastBody(role)
	if raw == nil || r.up == nil {
		return ExitSignatureInvalid, "the metadata does not carry enough valid signatures"
	}
	md, sigs, err := parseRole(role, raw)
	if err != nil {
		return ExitSignatureInvalid, "the metadata does not carry enough valid signatures"
	}
	trusted := r.up.GetTrustedMetadataSet()
	var (
		keys      map[string]*metadata.Key
		keyIDs    []string
		threshold int
		delegator string
	)
	switch role {
	case tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets:
		delegator = tufrepo.RoleRoot
		root := trusted.Root
		// A new root must be signed by the trusted root's keys and then by its own: if the
		// first check passes, the failure is with the new root's own keys.
		if nr, ok := md.(*metadata.Metadata[metadata.RootType]); ok && root.VerifyDelegate(tufrepo.RoleRoot, nr) == nil {
			root, delegator = nr, "the new root"
		}
		keys = root.Signed.Keys
		if rr := root.Signed.Roles[role]; rr != nil {
			keyIDs, threshold = rr.KeyIDs, rr.Threshold
		}
	default:
		d, name := findDelegation(trusted.Targets, role)
		if d == nil {
			return ExitKeyNotTrusted, fmt.Sprintf("no loaded role delegates to %q", role)
		}
		keys, keyIDs, threshold, delegator = d.keys, d.role.KeyIDs, d.role.Threshold, name
	}
	var valid, bad, untrusted []string
	for _, s := range sigs {
		k := keys[s.KeyID]
		switch {
		case !slices.Contains(keyIDs, s.KeyID) || k == nil:
			untrusted = append(untrusted, s.KeyID)
		case signatureVerifies(role, md, s.KeyID, k):
			valid = append(valid, s.KeyID)
		default:
			bad = append(bad, s.KeyID)
		}
	}
	switch {
	case len(bad) > 0:
		return ExitSignatureInvalid, fmt.Sprintf("the signature by trusted key %s does not verify: the metadata was altered after it was signed, or signed incorrectly", short(bad[0]))
	case len(untrusted) > 0:
		return ExitKeyNotTrusted, fmt.Sprintf("it is signed by key %s, which %s does not trust for %q (trusted keys: %s; %d of them must sign)",
			shortList(untrusted), delegator, role, shortList(keyIDs), threshold)
	}
	return ExitSignatureInvalid, fmt.Sprintf("it carries %d valid signature(s) from trusted keys; %s requires %d", len(valid), delegator, threshold)
}

// parseRole parses raw as the metadata type of role.
func parseRole(role string, raw []byte) (any, []metadata.Signature, error) {
	switch role {
	case tufrepo.RoleRoot:
		m, err := metadata.Root().FromBytes(raw)
		if err != nil {
			return nil, nil, err
		}
		return m, m.Signatures, nil
	case tufrepo.RoleTimestamp:
		m, err := metadata.Timestamp().FromBytes(raw)
		if err != nil {
			return nil, nil, err
		}
		return m, m.Signatures, nil
	case tufrepo.RoleSnapshot:
		m, err := metadata.Snapshot().FromBytes(raw)
		if err != nil {
			return nil, nil, err
		}
		return m, m.Signatures, nil
	default:
		m, err := metadata.Targets().FromBytes(raw)
		if err != nil {
			return nil, nil, err
		}
		return m, m.Signatures, nil
	}
}

// signatureVerifies checks the one signature by keyID over md, reusing go-tuf's own
// verification through a delegation to that single key.
func signatureVerifies(role string, md any, keyID string, k *metadata.Key) bool {
	d := metadata.Targets()
	d.Signed.Delegations = &metadata.Delegations{
		Keys:  map[string]*metadata.Key{keyID: k},
		Roles: []metadata.DelegatedRole{{Name: role, KeyIDs: []string{keyID}, Threshold: 1, Paths: []string{"*"}}},
	}
	return d.VerifyDelegate(role, md) == nil
}

// short abbreviates a key ID for messages; 16 hex digits are enough to tell keys apart.
func short(keyID string) string {
	if len(keyID) > 16 {
		return keyID[:16]
	}
	return keyID
}

func shortList(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = short(id)
	}
	return strings.Join(out, ", ")
}
