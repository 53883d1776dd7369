package tufrepo

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/canonjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// A submitted project role is read once: strictjson's check, then one parse into a tree
// (canonjson), from which both readings are taken.
//
//   - go-tuf's reading: projectRoleSigned mirrors the fields of go-tuf's TargetsType as
//     encoding/json fills them (including what null and absent fields become), and
//     appendCanonical writes it as go-tuf's MarshalJSON followed by securesystemslib's
//     cjson would. Tested byte for byte against go-tuf (projectrole_test.go).
//   - The plain reading (JavaScript's): the canonical JSON of the "signed" object as it
//     stands, canonjson.AppendCanonical.
//
// The two must be the same bytes (the rule of issue #9 that parseStrict enforces for other
// metadata), and every signature is verified over them. go-tuf's FromBytes decoded the
// document five to six times (a map per level for unrecognised fields) and securesystemslib
// canonicalised it twice through reflection; this is one parse and two linear writes.

// projectRole is a project role document as submitted.
type projectRole struct {
	Signatures []metadata.Signature
	Signed     projectRoleSigned
	// SignedRaw is the exact bytes of "signed" in the document (it aliases the document).
	SignedRaw json.RawMessage
	// Payload is the canonical JSON of "signed", identical under both readings: the bytes
	// every signature must cover.
	Payload []byte
}

// projectRoleSigned is go-tuf's reading of a project role's "signed" (metadata.TargetsType).
type projectRoleSigned struct {
	Type        string
	SpecVersion string
	Version     int64
	Expires     time.Time
	// Targets are sorted by path (the canonical order). HasTargets says "targets" is an
	// object: go-tuf reads an absent or null "targets" as no targets and writes it as null.
	Targets    []projectTarget
	HasTargets bool
	// Delegations is "delegations" when present and not null. A project role may not
	// delegate (checkProjectRole refuses it); it is kept only so that the refusal says so.
	Delegations *canonjson.Value
	// Unknown are the other members, which go-tuf keeps (UnrecognizedFields) and signs.
	Unknown []canonjson.Member
}

// projectTarget is go-tuf's reading of one target (metadata.TargetFiles).
type projectTarget struct {
	Path   string
	Length int64
	Hashes []targetHash // sorted by algorithm
	// Custom is "custom" as written (it aliases the document); nil when absent or null, as
	// for go-tuf.
	Custom      json.RawMessage
	customValue *canonjson.Value
	Unknown     []canonjson.Member
}

type targetHash struct {
	Alg string
	Sum []byte
}

// readProjectRole reads a project role document strictly: ambiguous JSON is refused
// (CheckJSON), then the document is read once, and go-tuf's reading of "signed" must
// re-encode to the canonical form of the document's own "signed" (see parseStrict for why).
// Errors are *api.Error: malformed_metadata for what go-tuf could not read, ambiguous_json
// for documents that readers could read differently.
func readProjectRole(raw []byte, what string) (*projectRole, error) {
	if err := CheckJSON(raw, what); err != nil {
		return nil, err
	}
	pr, plain, err := decodeProjectRole(raw, what)
	if err != nil {
		return nil, err
	}
	if err := sameCanonical(what, pr.Payload, plain); err != nil {
		return nil, err
	}
	return pr, nil
}

// decodeProjectRole parses raw once and returns go-tuf's reading (with Payload, its
// canonical encoding) and the canonical encoding of the plain reading of "signed".
func decodeProjectRole(raw []byte, what string) (*projectRole, []byte, error) {
	doc, err := canonjson.Parse(raw)
	if err != nil {
		// CheckJSON accepts nothing Parse refuses; this is a backstop.
		return nil, nil, api.Wrap(api.CodeMalformedMetadata, err, "%s is not valid JSON: %v", what, err)
	}
	malformed := func(err error) error {
		return api.Wrap(api.CodeMalformedMetadata, err, "%s does not parse as TUF metadata: %v", what, err)
	}
	if doc.Kind != canonjson.Object {
		return nil, nil, malformed(fmt.Errorf("the document is %s, not an object", doc.Kind))
	}
	// go-tuf's checkType, then its decoding into Metadata[TargetsType].
	signed := doc.Get("signed")
	if signed == nil || signed.Kind != canonjson.Object {
		return nil, nil, malformed(fmt.Errorf("metadata 'signed' field is missing or not an object"))
	}
	switch t := signed.Get("_type"); {
	case t == nil || t.Kind != canonjson.String:
		return nil, nil, malformed(fmt.Errorf("no _type found in signed"))
	case string(t.Str) != metadata.TARGETS:
		return nil, nil, malformed(fmt.Errorf("expected metadata type %s, got - %s", metadata.TARGETS, t.Str))
	}
	pr := &projectRole{SignedRaw: signed.Raw}
	if pr.Signatures, err = readSignatures(doc.Get("signatures")); err != nil {
		return nil, nil, malformed(err)
	}
	if err := pr.Signed.read(signed); err != nil {
		return nil, nil, malformed(err)
	}
	if pr.Payload, err = pr.Signed.appendCanonical(make([]byte, 0, len(signed.Raw))); err != nil {
		return nil, nil, api.Wrap(api.CodeMalformedMetadata, err, "%s cannot be canonicalised: %v", what, err)
	}
	plain, err := canonjson.AppendCanonical(make([]byte, 0, len(signed.Raw)), signed)
	if err != nil {
		return nil, nil, api.Wrap(api.CodeMalformedMetadata, err, "%s: its signed part cannot be canonicalised: %v", what, err)
	}
	return pr, plain, nil
}

// readSignatures reads "signatures" as go-tuf does: absent or null is none; each entry's
// "keyid" a string, "sig" hex (metadata.HexBytes' own decoding), other members kept; key
// IDs unique (go-tuf's checkUniqueSignatures).
func readSignatures(v *canonjson.Value) ([]metadata.Signature, error) {
	if v == nil || v.Kind == canonjson.Null {
		return nil, nil
	}
	if v.Kind != canonjson.Array {
		return nil, fmt.Errorf("signatures: %s is not an array", v.Kind)
	}
	sigs := make([]metadata.Signature, 0, len(v.Elems))
	for i := range v.Elems {
		e := &v.Elems[i]
		at := "signatures[" + strconv.Itoa(i) + "]"
		var s metadata.Signature
		switch e.Kind {
		case canonjson.Null: // encoding/json gives go-tuf an empty signature
		case canonjson.Object:
			for j := range e.Members {
				m := &e.Members[j]
				switch string(m.Key) {
				case "keyid":
					id, err := jsonString(&m.Value, at+".keyid")
					if err != nil {
						return nil, err
					}
					s.KeyID = id
				case "sig":
					if err := s.Signature.UnmarshalJSON(m.Value.Raw); err != nil {
						return nil, fmt.Errorf("%s.sig: %w", at, err)
					}
				default:
					var x any
					if err := json.Unmarshal(m.Value.Raw, &x); err != nil {
						return nil, fmt.Errorf("%s.%s: %w", at, m.Key, err)
					}
					if s.UnrecognizedFields == nil {
						s.UnrecognizedFields = map[string]any{}
					}
					s.UnrecognizedFields[string(m.Key)] = x
				}
			}
		default:
			return nil, fmt.Errorf("%s: %s is not an object", at, e.Kind)
		}
		for _, o := range sigs {
			if o.KeyID == s.KeyID {
				return nil, fmt.Errorf("multiple signatures found for key ID %s", s.KeyID)
			}
		}
		sigs = append(sigs, s)
	}
	return sigs, nil
}

// read fills s from the "signed" object as encoding/json fills go-tuf's TargetsType.
func (s *projectRoleSigned) read(v *canonjson.Value) error {
	for i := range v.Members {
		m := &v.Members[i]
		val := &m.Value
		var err error
		switch key := string(m.Key); key {
		case "_type":
			s.Type, err = jsonString(val, key)
		case "spec_version":
			s.SpecVersion, err = jsonString(val, key)
		case "version":
			s.Version, err = jsonInt(val, key)
		case "expires":
			// time.Time's own decoding, on the token as written, as encoding/json calls it.
			if err = s.Expires.UnmarshalJSON(val.Raw); err != nil {
				err = fmt.Errorf("expires: %w", err)
			}
		case "targets":
			err = s.readTargets(val)
		case "delegations":
			if val.Kind != canonjson.Null {
				s.Delegations = val
			}
		default:
			s.Unknown = append(s.Unknown, *m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *projectRoleSigned) readTargets(v *canonjson.Value) error {
	switch v.Kind {
	case canonjson.Null:
		return nil
	case canonjson.Object:
	default:
		return fmt.Errorf("targets: %s is not an object", v.Kind)
	}
	s.HasTargets = true
	s.Targets = make([]projectTarget, len(v.Members))
	for i := range v.Members {
		m := &v.Members[i]
		t := &s.Targets[i]
		t.Path = string(m.Key)
		if err := t.read(&m.Value); err != nil {
			return fmt.Errorf("targets[%q]: %w", t.Path, err)
		}
	}
	return nil
}

// read fills t as encoding/json and go-tuf's TargetFiles.UnmarshalJSON fill TargetFiles.
func (t *projectTarget) read(v *canonjson.Value) error {
	switch v.Kind {
	case canonjson.Object:
	case canonjson.Null:
		// go-tuf stores a nil *TargetFiles and then dereferences it (a panic).
		return fmt.Errorf("a target is an object, not null")
	default:
		return fmt.Errorf("%s is not an object", v.Kind)
	}
	for i := range v.Members {
		m := &v.Members[i]
		val := &m.Value
		switch string(m.Key) {
		case "length":
			n, err := jsonInt(val, "length")
			if err != nil {
				return err
			}
			t.Length = n
		case "hashes":
			if val.Kind != canonjson.Object && val.Kind != canonjson.Null {
				return fmt.Errorf("hashes: %s is not an object", val.Kind)
			}
			t.Hashes = make([]targetHash, len(val.Members))
			for j := range val.Members {
				h := &val.Members[j]
				var sum metadata.HexBytes
				if err := sum.UnmarshalJSON(h.Value.Raw); err != nil {
					return fmt.Errorf("hashes[%q]: %w", h.Key, err)
				}
				t.Hashes[j] = targetHash{Alg: string(h.Key), Sum: sum}
			}
		case "custom":
			if val.Kind != canonjson.Null {
				t.Custom, t.customValue = json.RawMessage(val.Raw), val
			}
		default:
			t.Unknown = append(t.Unknown, *m)
		}
	}
	if len(t.Hashes) == 0 {
		return fmt.Errorf("hashes must not be empty for target files")
	}
	return nil
}

// jsonString decodes a value into a Go string as encoding/json does (null leaves it empty).
func jsonString(v *canonjson.Value, at string) (string, error) {
	switch v.Kind {
	case canonjson.String:
		return string(v.Str), nil
	case canonjson.Null:
		return "", nil
	}
	return "", fmt.Errorf("%s: %s is not a string", at, v.Kind)
}

// jsonInt decodes a value into an int64 as encoding/json does (null leaves it 0).
func jsonInt(v *canonjson.Value, at string) (int64, error) {
	if v.Kind == canonjson.Null {
		return 0, nil
	}
	n, err := v.Int()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", at, err)
	}
	return n, nil
}

// appendCanonical appends the canonical JSON of s as go-tuf writes it: TargetsType's
// MarshalJSON (every field, zero or not; delegations when set; unrecognised members),
// encoded by securesystemslib's cjson. Keys are written in sorted order, the unrecognised
// ones merged in among the fixed ones.
func (s *projectRoleSigned) appendCanonical(b []byte) ([]byte, error) {
	w := canonWriter{b: append(b, '{'), unknown: s.Unknown}
	var err error
	w.key("_type")
	w.b = canonjson.AppendString(w.b, s.Type)
	if s.Delegations != nil {
		// Never accepted (a project role may not delegate); written in plain canonical
		// form so that the refusal is delegation_forbidden, not a difference of readings.
		w.key("delegations")
		if w.b, err = canonjson.AppendCanonical(w.b, s.Delegations); err != nil {
			return nil, err
		}
	}
	w.key("expires")
	exp, err := s.Expires.MarshalJSON() // RFC 3339 with its digits and offset: nothing to escape
	if err != nil {
		return nil, err
	}
	w.b = append(w.b, exp...)
	w.key("spec_version")
	w.b = canonjson.AppendString(w.b, s.SpecVersion)
	w.key("targets")
	if !s.HasTargets {
		w.b = append(w.b, "null"...)
	} else {
		w.b = append(w.b, '{')
		for i := range s.Targets {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			t := &s.Targets[i]
			w.b = canonjson.AppendString(w.b, t.Path)
			w.b = append(w.b, ':')
			if w.b, err = t.appendCanonical(w.b); err != nil {
				return nil, err
			}
		}
		w.b = append(w.b, '}')
	}
	w.key("version")
	w.b = strconv.AppendInt(w.b, s.Version, 10)
	if err := w.rest(); err != nil {
		return nil, err
	}
	return append(w.b, '}'), nil
}

// appendCanonical appends the canonical JSON of t as go-tuf writes a TargetFiles.
func (t *projectTarget) appendCanonical(b []byte) ([]byte, error) {
	w := canonWriter{b: append(b, '{'), unknown: t.Unknown}
	var err error
	if t.customValue != nil {
		// A *json.RawMessage: cjson decodes it with UseNumber, so it is written in plain
		// canonical form, numbers as they are.
		w.key("custom")
		if w.b, err = canonjson.AppendCanonical(w.b, t.customValue); err != nil {
			return nil, err
		}
	}
	w.key("hashes")
	w.b = append(w.b, '{')
	for i, h := range t.Hashes {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = canonjson.AppendString(w.b, h.Alg)
		w.b = append(w.b, ':', '"')
		w.b = hex.AppendEncode(w.b, h.Sum)
		w.b = append(w.b, '"')
	}
	w.b = append(w.b, '}')
	w.key("length")
	w.b = strconv.AppendInt(w.b, t.Length, 10)
	if err := w.rest(); err != nil {
		return nil, err
	}
	return append(w.b, '}'), nil
}

// canonWriter writes an object's members in key order: the caller writes the fixed keys in
// order through key, which first writes the unrecognised members that sort before them.
type canonWriter struct {
	b       []byte
	unknown []canonjson.Member // sorted, none equal to a fixed key
	n       int                // members written
	err     error
}

func (w *canonWriter) key(k string) {
	for len(w.unknown) > 0 && string(w.unknown[0].Key) < k && w.err == nil {
		w.member()
	}
	w.sep()
	w.b = canonjson.AppendString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *canonWriter) sep() {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
}

// member writes the next unrecognised member.
func (w *canonWriter) member() {
	m := &w.unknown[0]
	w.unknown = w.unknown[1:]
	w.sep()
	w.b = canonjson.AppendString(w.b, m.Key)
	w.b = append(w.b, ':')
	w.b, w.err = appendGoTUFAny(w.b, &m.Value)
}

// rest writes the unrecognised members after the last fixed key.
func (w *canonWriter) rest() error {
	for len(w.unknown) > 0 && w.err == nil {
		w.member()
	}
	return w.err
}

// appendGoTUFAny appends the canonical JSON of an unrecognised value as go-tuf signs it:
// decoded into interface{} (numbers become float64), marshalled, and canonicalised by cjson,
// which accepts only what then reads back as an int64.
func appendGoTUFAny(b []byte, v *canonjson.Value) ([]byte, error) {
	switch v.Kind {
	case canonjson.Number:
		// encoding/json writes a float64 below 1e21 in 'f' format; cjson then needs it to
		// read back as an int64.
		f, err := strconv.ParseFloat(string(v.Str), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1e21 {
			return nil, fmt.Errorf("canonical JSON has only integers within int64, not %s", v.Str)
		}
		start := len(b)
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
		if _, err := strconv.ParseInt(string(b[start:]), 10, 64); err != nil {
			return nil, fmt.Errorf("canonical JSON has only integers within int64, not %s", v.Str)
		}
		return b, nil
	case canonjson.Array:
		b = append(b, '[')
		for i := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendGoTUFAny(b, &v.Elems[i]); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case canonjson.Object:
		b = append(b, '{')
		for i := range v.Members {
			if i > 0 {
				b = append(b, ',')
			}
			b = canonjson.AppendString(b, v.Members[i].Key)
			b = append(b, ':')
			var err error
			if b, err = appendGoTUFAny(b, &v.Members[i].Value); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return canonjson.AppendCanonical(b, v)
}
