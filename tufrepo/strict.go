package tufrepo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// YankCustom is the part of a target's custom data that Cairn itself reads. Its field
// names are known to the strict JSON check, so "Yanked" cannot mean yanked to Go and not
// to JavaScript.
type YankCustom struct {
	Yanked     bool   `json:"yanked"`
	YankReason string `json:"yank_reason,omitempty"`
}

// Keys of a target's custom data that Cairn gives a meaning to.
const (
	CustomVersion    = "version"
	CustomYanked     = "yanked"
	CustomYankReason = "yank_reason"
)

// ReadYank is the one reading of a target's custom data for its yank: yanked only if the
// data is a JSON object whose "yanked" member (exactly that key) is true; the reason is
// its "yank_reason" member if that is a string. Custom data is the maintainers' to shape,
// so anything else (absent, null, not an object, "yanked": "true") is not a yank, and a
// reason that is not a string is no reason. Every reader (store, client, web) uses it, so
// no two of them can disagree about whether a release is yanked.
func ReadYank(custom []byte) (yanked bool, reason string) {
	var c map[string]json.RawMessage
	if json.Unmarshal(custom, &c) != nil {
		return false, ""
	}
	if v, ok := c[CustomYanked]; !ok || string(bytes.TrimSpace(v)) != "true" {
		return false, ""
	}
	if json.Unmarshal(c[CustomYankReason], &reason) != nil {
		reason = ""
	}
	return true, reason
}

// ReleaseYank is a release's yank as its files' custom data give it (ReadYank for each of
// paths): yanked if any file is, with the reason of the first file by path that gives one.
func ReleaseYank(targets map[string]*metadata.TargetFiles, paths []string) (yanked bool, reason string) {
	paths = slices.Sorted(slices.Values(paths))
	for _, p := range paths {
		tf := targets[p]
		if tf == nil || tf.Custom == nil {
			continue
		}
		if y, r := ReadYank(*tf.Custom); y {
			yanked = true
			if reason == "" {
				reason = r
			}
		}
	}
	return yanked, reason
}

// metadataFields are the field names of every metadata document Cairn reads with Go's
// case-insensitive decoder: TUF's four roles, Cairn's maintainer change documents and the
// custom data Cairn interprets.
var metadataFields = sync.OnceValue(func() strictjson.Fields {
	return strictjson.FieldsOf(
		metadata.Metadata[metadata.RootType]{},
		metadata.Metadata[metadata.TargetsType]{},
		metadata.Metadata[metadata.SnapshotType]{},
		metadata.Metadata[metadata.TimestampType]{},
		api.MaintainerChange{},
		YankCustom{},
		projectLinksDoc{},
	)
})

// CheckJSON refuses a document of TUF metadata (or a Cairn document signed like it) that is
// not JSON (malformed_metadata) or that parsers could read differently (ambiguous_json; see
// package strictjson). what names the document in the error, e.g. `project role "hello"`.
func CheckJSON(raw []byte, what string) error {
	return CheckJSONFields(raw, what, metadataFields(), api.CodeMalformedMetadata)
}

// CheckJSONFields is CheckJSON for another document shape: known are its field names, and
// syntax the code for a document that is not JSON at all.
func CheckJSONFields(raw []byte, what string, known strictjson.Fields, syntax api.Code) error {
	err := strictjson.Check(raw, known)
	if err == nil {
		return nil
	}
	var se *strictjson.Error
	if errors.As(err, &se) && se.Syntax {
		return api.Wrap(syntax, err, "%s is not valid JSON: %s at %s (byte %d)", what, se.Reason, se.Path, se.Offset)
	}
	if se != nil {
		return api.Wrap(api.CodeAmbiguousJSON, err, "%s is refused because JSON parsers could read it differently: %s at %s (byte %d)", what, se.Reason, se.Path, se.Offset)
	}
	return api.Wrap(api.CodeAmbiguousJSON, err, "%s is refused: %v", what, err)
}

// ParsedMetadata is TUF metadata read strictly: the go-tuf value, and the canonical bytes
// of its signed part that every signature must cover.
type ParsedMetadata[T metadata.Roles] struct {
	MD *metadata.Metadata[T]
	// Payload is the canonical JSON of "signed": the same bytes whether computed from
	// go-tuf's typed reading or from a plain reading of the document.
	Payload []byte
	// Signed is the exact bytes of "signed" in the document.
	Signed json.RawMessage
}

// ParseTargetsStrict reads targets metadata (top-level targets, claimed, a project role).
func ParseTargetsStrict(raw []byte, what string) (*ParsedMetadata[metadata.TargetsType], error) {
	return parseStrict(raw, what, metadata.Targets().FromBytes)
}

// ParseRootStrict reads root metadata.
func ParseRootStrict(raw []byte, what string) (*ParsedMetadata[metadata.RootType], error) {
	return parseStrict(raw, what, metadata.Root().FromBytes)
}

// parseStrict refuses ambiguous JSON, parses with go-tuf, and requires go-tuf's reading of
// "signed" to re-encode to the canonical form of the document's own "signed" object. go-tuf
// verifies signatures over the canonical encoding of its typed value, JavaScript clients
// over the canonical encoding of the plain object; where the two differ (a hash in upper
// case hex, a null custom, a field go-tuf drops), one client would verify bytes the other
// never sees.
func parseStrict[T metadata.Roles](raw []byte, what string, fromBytes func([]byte) (*metadata.Metadata[T], error)) (*ParsedMetadata[T], error) {
	if err := CheckJSON(raw, what); err != nil {
		return nil, err
	}
	md, err := fromBytesSafe(raw, fromBytes)
	if err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "%s does not parse as TUF metadata: %v", what, err)
	}
	payload, err := Canonical(md.Signed)
	if err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "%s cannot be canonicalised: %v", what, err)
	}
	signed, err := signedOf(raw)
	if err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "%s: cannot read its signed part", what)
	}
	plain, err := Canonical(signed)
	if err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "%s: its signed part cannot be canonicalised: %v", what, err)
	}
	if err := sameCanonical(what, payload, plain); err != nil {
		return nil, err
	}
	return &ParsedMetadata[T]{MD: md, Payload: payload, Signed: signed}, nil
}

// sameCanonical refuses a document whose "signed" re-encodes differently under go-tuf's
// reading (payload) and the plain reading (plain).
func sameCanonical(what string, payload, plain []byte) error {
	if bytes.Equal(payload, plain) {
		return nil
	}
	at := firstDifference(payload, plain)
	return api.Errorf(api.CodeAmbiguousJSON, "%s is refused because TUF clients could verify different bytes: go-tuf's reading of \"signed\" re-encodes to canonical JSON that differs from the document's own at byte %d (%q vs %q); use lowercase hex, omit null optional fields, and write every field in its canonical form", what, at, excerpt(payload, at), excerpt(plain, at))
}

func firstDifference(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func excerpt(b []byte, at int) string {
	from, to := max(0, at-20), min(len(b), at+20)
	return string(b[from:to])
}

// CheckAllSignatures requires every signature of a document to be by a key in allowed and
// to verify over payload, each key at most once. Counting only the valid signatures toward
// the threshold (as TUF clients do) would let a document carry signatures that verify
// nothing: a client that parses the document differently could then count them. A
// document Cairn accepts has no such signatures, so every reader counts the same ones.
func CheckAllSignatures(what string, payload []byte, sigs []metadata.Signature, allowed map[string]*metadata.Key) error {
	seen := map[string]bool{}
	for _, s := range sigs {
		k, ok := allowed[s.KeyID]
		if !ok {
			return api.Errorf(api.CodeKeyNotDelegated, "%s carries a signature by key %s, which is not one of the keys allowed to sign it (%v): remove that signature", what, s.KeyID, sortedKeyIDs(allowed))
		}
		if seen[s.KeyID] {
			return api.Errorf(api.CodeSignatureRepeated, "%s carries two signatures by key %s: keep one", what, s.KeyID)
		}
		seen[s.KeyID] = true
		if err := VerifySignature(k, payload, s.Signature); err != nil {
			return api.Errorf(api.CodeSignatureInvalid, "%s carries a signature by key %s that does not verify over its canonical signed bytes: remove it or sign the exact document you submit", what, s.KeyID)
		}
	}
	return nil
}

func sortedKeyIDs(m map[string]*metadata.Key) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// rootRoleKeys returns the keys root gives role.
func rootRoleKeys(root *metadata.Metadata[metadata.RootType], role string) map[string]*metadata.Key {
	out := map[string]*metadata.Key{}
	r := root.Signed.Roles[role]
	if r == nil {
		return out
	}
	for _, id := range r.KeyIDs {
		if k, ok := root.Signed.Keys[id]; ok {
			out[id] = k
		}
	}
	return out
}

// delegatedKeys returns the keys a targets role delegates role to.
func delegatedKeys(delegator *metadata.Metadata[metadata.TargetsType], role string) map[string]*metadata.Key {
	out := map[string]*metadata.Key{}
	d := delegator.Signed.Delegations
	if d == nil {
		return out
	}
	for _, r := range d.Roles {
		if r.Name != role {
			continue
		}
		for _, id := range r.KeyIDs {
			if k, ok := d.Keys[id]; ok {
				out[id] = k
			}
		}
	}
	return out
}

// fromBytesSafe runs go-tuf's parser, turning a panic into an error: go-tuf v2.4.2's
// FromBytes dereferences a nil pointer on a null target ("targets":{"x":null}), and these
// bytes come from clients.
func fromBytesSafe[T metadata.Roles](raw []byte, fromBytes func([]byte) (*metadata.Metadata[T], error)) (md *metadata.Metadata[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			md, err = nil, fmt.Errorf("go-tuf's parser failed on it (%v): look for null or missing values", r)
		}
	}()
	return fromBytes(raw)
}
