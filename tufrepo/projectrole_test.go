package tufrepo

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// goTUFRead is go-tuf's reading of a targets document and its canonical encoding of
// "signed" (what go-tuf verifies signatures over). go-tuf panics on a target that is null;
// that counts as a refusal.
func goTUFRead(doc []byte) (md *metadata.Metadata[metadata.TargetsType], payload []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			md, payload, err = nil, nil, fmt.Errorf("go-tuf panicked: %v", r)
		}
	}()
	md, err = metadata.Targets().FromBytes(doc)
	if err != nil {
		return nil, nil, err
	}
	payload, err = Canonical(md.Signed)
	return md, payload, err
}

// sameAsGoTUF checks that decodeProjectRole reads doc as go-tuf does: both refuse it, or
// both read the same fields and signatures and the hand-written encoder writes go-tuf's
// canonical bytes exactly. It reports whether both read it. A document with "delegations"
// is only checked to be read (a project role with delegations is refused later).
func sameAsGoTUF(t *testing.T, doc []byte) bool {
	t.Helper()
	md, want, goErr := goTUFRead(doc)
	pr, _, err := decodeProjectRole(doc, "the role")
	if pr != nil && pr.Signed.Delegations != nil {
		return false
	}
	if (goErr == nil) != (err == nil) {
		t.Fatalf("go-tuf error %v, decodeProjectRole error %v, on\n%s", goErr, err, doc)
	}
	if err != nil {
		return false
	}
	if !bytes.Equal(pr.Payload, want) {
		at := firstDifference(pr.Payload, want)
		t.Fatalf("hand-written canonical encoding differs from go-tuf's at byte %d\n got: %q\nwant: %q\ndoc: %s", at, excerpt(pr.Payload, at), excerpt(want, at), doc)
	}
	s := &pr.Signed
	g := md.Signed
	if s.Type != g.Type || s.SpecVersion != g.SpecVersion || s.Version != g.Version || !s.Expires.Equal(g.Expires) || s.Expires.Location().String() != g.Expires.Location().String() {
		t.Fatalf("read %q %q v%d %s, go-tuf read %q %q v%d %s", s.Type, s.SpecVersion, s.Version, s.Expires, g.Type, g.SpecVersion, g.Version, g.Expires)
	}
	if len(s.Targets) != len(g.Targets) || s.HasTargets != (g.Targets != nil) {
		t.Fatalf("read %d targets (object %v), go-tuf %d (nil %v)", len(s.Targets), s.HasTargets, len(g.Targets), g.Targets == nil)
	}
	if !slices.IsSortedFunc(s.Targets, func(a, b projectTarget) int { return strings.Compare(a.Path, b.Path) }) {
		t.Fatal("targets are not sorted by path")
	}
	for _, tf := range s.Targets {
		gt := g.Targets[tf.Path]
		if gt == nil {
			t.Fatalf("target %q is not in go-tuf's reading", tf.Path)
		}
		hashes := metadata.Hashes{}
		for _, h := range tf.Hashes {
			hashes[h.Alg] = h.Sum
		}
		var gc json.RawMessage
		if gt.Custom != nil {
			gc = *gt.Custom
		}
		if tf.Length != gt.Length || !reflect.DeepEqual(hashes, gt.Hashes) || !bytes.Equal(tf.Custom, gc) || (tf.Custom == nil) != (gc == nil) {
			t.Fatalf("target %q read as %d %v %s, go-tuf %d %v %s", tf.Path, tf.Length, hashes, tf.Custom, gt.Length, gt.Hashes, gc)
		}
		if len(tf.Unknown) != len(gt.UnrecognizedFields) {
			t.Fatalf("target %q: %d unrecognised fields, go-tuf %d", tf.Path, len(tf.Unknown), len(gt.UnrecognizedFields))
		}
	}
	if len(s.Unknown) != len(g.UnrecognizedFields) {
		t.Fatalf("%d unrecognised fields, go-tuf %d", len(s.Unknown), len(g.UnrecognizedFields))
	}
	if len(pr.Signatures) != len(md.Signatures) {
		t.Fatalf("%d signatures, go-tuf %d", len(pr.Signatures), len(md.Signatures))
	}
	for i, sig := range pr.Signatures {
		gs := md.Signatures[i]
		if sig.KeyID != gs.KeyID || !bytes.Equal(sig.Signature, gs.Signature) || len(sig.UnrecognizedFields) != len(gs.UnrecognizedFields) ||
			(len(gs.UnrecognizedFields) > 0 && !reflect.DeepEqual(sig.UnrecognizedFields, gs.UnrecognizedFields)) {
			t.Fatalf("signature %d read as %+v, go-tuf %+v", i, sig, gs)
		}
	}
	if raw, err := signedOf(doc); err != nil || !bytes.Equal(pr.SignedRaw, raw) {
		t.Fatalf("SignedRaw %q is not the document's \"signed\"", pr.SignedRaw)
	}
	return true
}

// TestProjectRoleEncodingMatchesGoTUF: on a table of roles built with go-tuf, the reading
// and its canonical bytes are go-tuf's, byte for byte, and the document is accepted as one
// reading (its own canonical form is the same).
func TestProjectRoleEncodingMatchesGoTUF(t *testing.T) {
	exp := t0.Add(30 * 24 * time.Hour)
	tf := func(content string, custom string) *metadata.TargetFiles {
		f := targetFile([]byte(content))
		if custom != "" {
			f.Custom = rawMsg(custom)
		}
		return f
	}
	many := map[string]*metadata.TargetFiles{}
	for i := range MaxTargetsPerRole {
		many[fmt.Sprintf("demo/%d.%d/demo-%d.tar.gz", i/100, i%100, i)] = tf(fmt.Sprint(i), "")
	}
	tests := []struct {
		name string
		md   func() *metadata.Metadata[metadata.TargetsType]
	}{
		{"no targets", func() *metadata.Metadata[metadata.TargetsType] {
			return newProjectRole(1, exp, map[string]*metadata.TargetFiles{})
		}},
		{"null targets", func() *metadata.Metadata[metadata.TargetsType] {
			md := newProjectRole(1, exp, nil)
			md.Signed.Targets = nil
			return md
		}},
		{"one target", func() *metadata.Metadata[metadata.TargetsType] {
			return newProjectRole(3, exp, map[string]*metadata.TargetFiles{"demo/1.0/demo.tgz": tf("a", "")})
		}},
		{"unicode and escaped paths", func() *metadata.Metadata[metadata.TargetsType] {
			return newProjectRole(2, exp, map[string]*metadata.TargetFiles{
				"demo/1.0/é.tgz": tf("a", ""), "demo/1.0/😀": tf("b", ""), "demo/1.0/日本語.txt": tf("c", ""),
				`demo/1.0/q"uote`: tf("d", ""), `demo/1.0/back\slash`: tf("e", ""), "demo/1.0/ctl\x01\n\t": tf("f", ""),
				"demo/1.0/<html>&": tf("g", ""), "demo/1.0/sep\u2028\u2029": tf("h", ""),
				"demo/1.0/Z": tf("j", ""), "demo/1.0/_": tf("k", ""), "demo/1.0/": tf("l", ""),
			})
		}},
		{"paths at the end of the basic plane", func() *metadata.Metadata[metadata.TargetsType] {
			return newProjectRole(2, exp, map[string]*metadata.TargetFiles{"demo/1.0/\ue000": tf("a", ""), "demo/1.0/\uffff": tf("b", ""), "demo/1.0/\u07ff": tf("c", "")})
		}},
		{"custom data", func() *metadata.Metadata[metadata.TargetsType] {
			return newProjectRole(2, exp, map[string]*metadata.TargetFiles{
				"demo/1.0/a": tf("a", `{"yanked":true,"yank_reason":"broken \u00e9 \ud83d\ude00 \"quoted\" \\ <&>"}`),
				"demo/1.0/b": tf("b", `"a string"`),
				"demo/1.0/c": tf("c", `-9007199254740991`),
				"demo/1.0/d": tf("d", `[1, "two", null, true, false, {"z": 1, "a": [ ]}]`),
				"demo/1.0/e": tf("e", `{}`),
				"demo/1.0/f": tf("f", `{ "z" : { "y" : { "x" : "\u0001\n" } }, "A": 0, "_": -1 }`),
				"demo/1.0/g": tf("g", `"`+strings.Repeat("x", MaxCustomBytes-2)+`"`),
			})
		}},
		{"unrecognised fields", func() *metadata.Metadata[metadata.TargetsType] {
			md := newProjectRole(2, exp, map[string]*metadata.TargetFiles{"demo/1.0/a": tf("a", `{"yanked":false}`), "demo/1.0/b": tf("b", "")})
			md.Signed.UnrecognizedFields = map[string]any{"0": []any{1.0, 2.0}, "B": 1.0, "Z": "z", "a": true, "f": nil, "s": map[string]any{"z": 1.0, "a": "b"}, "u": -3.0, "x-cairn": "é", "zz": []any{}}
			md.Signed.Targets["demo/1.0/a"].UnrecognizedFields = map[string]any{"a": 1.0, "d": "x", "i": []any{}, "zz": map[string]any{"k": -5.0}, "B": nil}
			return md
		}},
		{"two hashes", func() *metadata.Metadata[metadata.TargetsType] {
			f := tf("a", "")
			f.Hashes["sha512"] = bytes.Repeat([]byte{0xab}, 64)
			f.Hashes["md5"] = []byte{}
			return newProjectRole(2, exp, map[string]*metadata.TargetFiles{"demo/1.0/a": f})
		}},
		{"extreme integers", func() *metadata.Metadata[metadata.TargetsType] {
			f, g := tf("a", ""), tf("b", "")
			f.Length, g.Length = 0, 1<<53-1
			md := newProjectRole(1<<53-1, exp, map[string]*metadata.TargetFiles{"demo/1.0/a": f, "demo/1.0/b": g})
			return md
		}},
		{"expiry with fraction and offset", func() *metadata.Metadata[metadata.TargetsType] {
			return newProjectRole(2, exp.Add(123456789*time.Nanosecond).In(time.FixedZone("", 5*3600+1800)), map[string]*metadata.TargetFiles{"demo/1.0/a": tf("a", "")})
		}},
		{"spec version and type as given", func() *metadata.Metadata[metadata.TargetsType] {
			md := newProjectRole(2, exp, nil)
			md.Signed.SpecVersion = `1.0.31-é"\`
			return md
		}},
		{"maximum targets", func() *metadata.Metadata[metadata.TargetsType] { return newProjectRole(2, exp, many) }},
	}
	m1 := newTestSigner(t, KeyEd25519)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := signRole(t, tc.md(), m1)
			if !sameAsGoTUF(t, doc) {
				t.Fatal("go-tuf refuses the document")
			}
			if _, err := readProjectRole(doc, "the role"); err != nil {
				t.Fatalf("a document go-tuf wrote is refused: %v", err)
			}
		})
	}
}

// TestProjectRoleReadingOfOddDocuments: documents written by hand, with null and missing
// fields, unusual key orders and spellings, are read as go-tuf reads them; where the
// readings re-encode differently the document is refused as ambiguous, as before.
func TestProjectRoleReadingOfOddDocuments(t *testing.T) {
	h := sha256Hex([]byte("genuine"))
	target := `{"hashes":{"sha256":"` + h + `"},"length":7}`
	signed := func(fields string) string {
		return `{"_type":"targets",` + fields + `}`
	}
	std := `"expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{"demo/1.0/a":` + target + `},"version":1`
	tests := []struct {
		name   string
		signed string
		sigs   string
		code   api.Code // "" when readProjectRole must accept it
	}{
		{"canonical", signed(std), "", ""},
		{"pretty-printed", strings.ReplaceAll(signed(std), ",", " ,\n\t"), "", ""},
		{"keys in reverse order", `{"version":1,"targets":{"demo/1.0/a":{"length":7,"hashes":{"sha256":"` + h + `"}}},"spec_version":"1.0.31","expires":"2030-01-01T00:00:00Z","_type":"targets"}`, "", ""},
		{"escaped key and value spellings", `{"\u005ftype":"t\u0061rgets",` + strings.Replace(std, `"version"`, `"versio\u006e"`, 1) + `}`, "", ""},
		{"unknown keys around every field", signed(`"0":0,"B":[],"a":{},"f":"x",` + std + `,"s":null,"u":true,"zz":-1`), "", ""},
		{"unknown keys in a target", signed(strings.Replace(std, `{"hashes"`, `{"a":1,"d":[{"k":"v"}],"hashes"`, 1)), "", ""},
		{"signatures with unknown fields", signed(std), `[{"keyid":"k1","sig":"abcd","x-note":{"n":1}},{"sig":"ABCD","keyid":"k2"}]`, ""},
		{"null signature entry", signed(std), `[null]`, ""},
		{"null signatures", signed(std), `null`, ""},
		{"targets null", signed(strings.Replace(std, `{"demo/1.0/a":`+target+`}`, `null`, 1)), "", ""},

		{"version null", signed(strings.Replace(std, `"version":1`, `"version":null`, 1)), "", api.CodeAmbiguousJSON},
		{"version missing", signed(strings.Replace(std, `,"version":1`, ``, 1)), "", api.CodeAmbiguousJSON},
		{"spec_version null", signed(strings.Replace(std, `"1.0.31"`, `null`, 1)), "", api.CodeAmbiguousJSON},
		{"expires null", signed(strings.Replace(std, `"2030-01-01T00:00:00Z"`, `null`, 1)), "", api.CodeAmbiguousJSON},
		{"expires missing", signed(strings.Replace(std, `"expires":"2030-01-01T00:00:00Z",`, ``, 1)), "", api.CodeAmbiguousJSON},
		{"expires with trailing zeros", signed(strings.Replace(std, `00:00:00Z`, `00:00:00.500Z`, 1)), "", api.CodeAmbiguousJSON},
		{"expires with +00:00", signed(strings.Replace(std, `00:00:00Z`, `00:00:00+00:00`, 1)), "", api.CodeAmbiguousJSON},
		{"custom null", signed(strings.Replace(std, `{"hashes"`, `{"custom":null,"hashes"`, 1)), "", api.CodeAmbiguousJSON},
		{"delegations null", signed(std + `,"delegations":null`), "", api.CodeAmbiguousJSON},
		{"upper-case hash", signed(strings.Replace(std, h, strings.ToUpper(h), 1)), "", api.CodeAmbiguousJSON},
		{"targets missing", signed(strings.Replace(std, `,"targets":{"demo/1.0/a":`+target+`}`, ``, 1)), "", api.CodeAmbiguousJSON},
		{"length missing", signed(strings.Replace(std, `,"length":7`, ``, 1)), "", api.CodeAmbiguousJSON},
		{"length null", signed(strings.Replace(std, `"length":7`, `"length":null`, 1)), "", api.CodeAmbiguousJSON},

		{"target null", signed(strings.Replace(std, target, `null`, 1)), "", api.CodeMalformedMetadata},
		{"target a string", signed(strings.Replace(std, target, `"x"`, 1)), "", api.CodeMalformedMetadata},
		{"targets an array", signed(strings.Replace(std, `{"demo/1.0/a":`+target+`}`, `[]`, 1)), "", api.CodeMalformedMetadata},
		{"version a string", signed(strings.Replace(std, `"version":1`, `"version":"1"`, 1)), "", api.CodeMalformedMetadata},
		{"length a string", signed(strings.Replace(std, `"length":7`, `"length":"7"`, 1)), "", api.CodeMalformedMetadata},
		{"spec_version a number", signed(strings.Replace(std, `"1.0.31"`, `1`, 1)), "", api.CodeMalformedMetadata},
		{"expires not RFC 3339", signed(strings.Replace(std, `2030-01-01T00:00:00Z`, `2030-01-01`, 1)), "", api.CodeMalformedMetadata},
		{"expires escaped", signed(strings.Replace(std, `2030-01-01T`, `2030-01-01\u0054`, 1)), "", api.CodeMalformedMetadata},
		{"hashes empty", signed(strings.Replace(std, `{"sha256":"`+h+`"}`, `{}`, 1)), "", api.CodeMalformedMetadata},
		{"hashes null", signed(strings.Replace(std, `{"sha256":"`+h+`"}`, `null`, 1)), "", api.CodeMalformedMetadata},
		{"hash odd length", signed(strings.Replace(std, h, h[1:], 1)), "", api.CodeMalformedMetadata},
		{"hash not hex", signed(strings.Replace(std, h, "zz"+h[2:], 1)), "", api.CodeMalformedMetadata},
		{"hash escaped", signed(strings.Replace(std, h, `\u0061`+h[1:], 1)), "", api.CodeMalformedMetadata},
		{"hash null", signed(strings.Replace(std, `"`+h+`"`, `null`, 1)), "", api.CodeMalformedMetadata},
		{"type snapshot", strings.Replace(signed(std), `"targets",`, `"snapshot",`, 1), "", api.CodeMalformedMetadata},
		{"type missing", `{` + std + `}`, "", api.CodeMalformedMetadata},
		{"signed an array", `[]`, "", api.CodeMalformedMetadata},
		{"signatures an object", signed(std), `{}`, api.CodeMalformedMetadata},
		{"signature a number", signed(std), `[1]`, api.CodeMalformedMetadata},
		{"sig odd length", signed(std), `[{"keyid":"k","sig":"abc"}]`, api.CodeMalformedMetadata},
		{"sig null", signed(std), `[{"keyid":"k","sig":null}]`, api.CodeMalformedMetadata},
		{"keyid a number", signed(std), `[{"keyid":1,"sig":"ab"}]`, api.CodeMalformedMetadata},
		{"key ID twice", signed(std), `[{"keyid":"k","sig":"ab"},{"keyid":"k","sig":"cd"}]`, api.CodeMalformedMetadata},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sigs := tc.sigs
			if sigs == "" {
				sigs = "[]"
			}
			doc := []byte(`{"signatures":` + sigs + `,"signed":` + tc.signed + `}`)
			sameAsGoTUF(t, doc)
			_, err := readProjectRole(doc, "the role")
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantCode(t, err, tc.code)
		})
	}
}

// FuzzProjectRoleEncoding holds the reading and the hand-written encoder to go-tuf on
// documents the strict check lets through: same refusals, same fields, same canonical bytes.
func FuzzProjectRoleEncoding(f *testing.F) {
	h := sha256Hex([]byte("genuine"))
	for _, seed := range []struct{ signed, sigs string }{
		{`{"_type":"targets","expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{"demo/1.0/a":{"hashes":{"sha256":"` + h + `"},"length":7}},"version":1}`, `[]`},
		{`{"_type":"targets","0":[1,{"b":null}],"expires":"2030-01-01T00:00:00.5+01:00","spec_version":null,"targets":{"demo/1.0/é":{"custom":{"yanked":true,"n":[-1,"\u00e9"]},"x":1,"hashes":{"sha512":"ab","sha256":"CD"},"length":0}},"version":null,"z":"\"\\"}`, `[{"keyid":"a","sig":"00","u":[1]},null]`},
		{`{"_type":"targets","targets":null,"delegations":null}`, `null`},
		{`{"_type":"targets","expires":"2030-01-01T00:00:00Z","targets":{"p":null}}`, ``},
	} {
		f.Add([]byte(seed.signed), []byte(seed.sigs))
	}
	f.Fuzz(func(t *testing.T, signed, sigs []byte) {
		if len(sigs) == 0 {
			sigs = []byte("[]")
		}
		doc := []byte(`{"signatures":` + string(sigs) + `,"signed":` + string(signed) + `}`)
		if CheckJSON(doc, "fuzz") != nil {
			return
		}
		if !sameAsGoTUF(t, doc) {
			return
		}
		// What readProjectRole accepts, go-tuf and the plain reading encode alike.
		pr, err := readProjectRole(doc, "fuzz")
		if err != nil {
			return
		}
		plain, err := Canonical(json.RawMessage(pr.SignedRaw))
		if err != nil || !bytes.Equal(plain, pr.Payload) {
			t.Fatalf("accepted, but the plain reading encodes to %q (%v), not %q", plain, err, pr.Payload)
		}
	})
}

// A document read from a role that Cairn's own client signs validates the same through
// the new reader as go-tuf verified it: the payload is what go-tuf signed.
func TestProjectRolePayloadIsWhatGoTUFSigns(t *testing.T) {
	f := newVFix(t)
	md := f.role()
	md.Signed.Targets[f.newPath].Custom = rawMsg(`{"yanked":true,"yank_reason":"é"}`)
	raw := signRole(t, md, f.m1)
	pr, err := readProjectRole(raw, "the role")
	if err != nil {
		t.Fatal(err)
	}
	want, err := Canonical(md.Signed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pr.Payload, want) {
		t.Fatalf("payload %s\nwant %s", pr.Payload, want)
	}
	sig, err := f.m1.Sign(context.Background(), pr.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(sig.Signature) != hex.EncodeToString(pr.Signatures[0].Signature) {
		t.Fatal("the document's signature is not over the payload (ed25519 is deterministic)")
	}
}
