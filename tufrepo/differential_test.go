package tufrepo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/tufjs"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// reading is what one parser made of a targets metadata document.
type reading struct {
	Parsed      bool                     `json:"parsed"`
	Error       string                   `json:"error,omitempty"`
	Verified    bool                     `json:"verified"`
	VerifyError string                   `json:"verifyError,omitempty"`
	Version     int64                    `json:"version"`
	Expires     string                   `json:"expires"`
	Targets     map[string]readingTarget `json:"targets"`
}

type readingTarget struct {
	Length int64             `json:"length"`
	Hashes map[string]string `json:"hashes"`
	Extra  string            `json:"extra"` // canonical JSON of custom and unknown fields
}

// same reports whether two readings accept the same document with the same content.
func (r reading) same(o reading) bool {
	return r.Parsed && o.Parsed && r.Verified && o.Verified && r.Version == o.Version && r.Expires == o.Expires && reflect.DeepEqual(r.Targets, o.Targets)
}

// goTUFReading reads doc as go-tuf v2 does and verifies it against delegator.
func goTUFReading(doc []byte, delegator *metadata.Metadata[metadata.TargetsType], role string) reading {
	md, err := metadata.Targets().FromBytes(doc)
	if err != nil {
		return reading{Error: err.Error()}
	}
	r := reading{Parsed: true, Version: md.Signed.Version, Expires: md.Signed.Expires.UTC().Format(time.RFC3339Nano), Targets: map[string]readingTarget{}}
	for p, tf := range md.Signed.Targets {
		extra := maps.Clone(tf.UnrecognizedFields)
		if extra == nil {
			extra = map[string]any{}
		}
		if tf.Custom != nil {
			extra["custom"] = *tf.Custom
		}
		c, err := Canonical(extra)
		if err != nil {
			c = []byte("error: " + err.Error())
		}
		hashes := map[string]string{}
		for alg, h := range tf.Hashes {
			hashes[alg] = hex.EncodeToString(h)
		}
		r.Targets[p] = readingTarget{Length: tf.Length, Hashes: hashes, Extra: string(c)}
	}
	if err := delegator.VerifyDelegate(role, md); err != nil {
		r.VerifyError = err.Error()
	} else {
		r.Verified = true
	}
	return r
}

// serverReading is what the server accepts: ValidateProposal, the function every upload
// path calls, for version 1 of a new project whose blobs were all uploaded, so that only the
// reading of the document decides.
func serverReading(doc []byte, st ProjectState, now time.Time) (reading, error) {
	sizes := map[string]int64{}
	for _, c := range blobContents {
		sizes[sha256Hex([]byte(c))] = int64(len(c))
	}
	acc, err := ValidateProposal(doc, st, now, func([]string) (map[string]int64, error) { return sizes, nil })
	if err != nil {
		return reading{}, err
	}
	if !acc.Complete() {
		return reading{}, fmt.Errorf("accepted only as a proposal (%d of %d signatures)", len(acc.SignedBy), acc.Threshold)
	}
	r := reading{Parsed: true, Verified: true, Version: acc.Version, Expires: acc.Expires.UTC().Format(time.RFC3339Nano), Targets: map[string]readingTarget{}}
	for _, f := range acc.NewFiles {
		extra := map[string]any{}
		if f.Custom != nil {
			extra["custom"] = f.Custom
		}
		c, err := Canonical(extra)
		if err != nil {
			return reading{}, err
		}
		r.Targets[f.Path] = readingTarget{Length: f.Length, Hashes: map[string]string{"sha256": f.SHA256}, Extra: string(c)}
	}
	return r, nil
}

// blobContents are the files the hostile documents name; the server holds all of them.
var blobContents = []string{"genuine", "replaced bytes", "never uploaded"}

// hostileCase is one document and how it was built.
type hostileCase struct {
	name string
	doc  []byte
	// accepted says whether the server must accept it (a document with one reading that
	// every parser verifies) or refuse it. The test checks the server's verdict against
	// this, and for accepted documents that go-tuf and tuf-js read exactly what the server
	// read.
	accepted bool
	// split marks a document that go-tuf and tuf-js both verify but read differently: the
	// attack itself, shown to be real so that refusing it is what the test checks.
	split bool
}

// TestParserDifferential feeds the same documents, most of them hostile, to the server's
// parser (ValidateProposal), go-tuf v2 and tuf-js. For each, either the server refuses it,
// or all three read the same version, expiry and targets (paths, lengths, hashes, custom
// data) and both clients verify its signatures. Issue #9: a document that the server
// validated under one reading and a JavaScript client verified under another reading let a
// maintainer key publish files the upload rules never checked.
func TestParserDifferential(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := tufjs.Ensure(ctx)
	if err != nil {
		t.Fatalf("tuf-js is needed for the differential test: %v", err)
	}

	m1, m2 := newTestSigner(t, KeyEd25519), newTestSigner(t, KeyECDSAP256)
	st := ProjectState{Delegation: delegationFor("demo", 1, m1, m2)}
	delegatorMD := metadata.Targets(t0.Add(365 * 24 * time.Hour))
	delegatorMD.Signed.Delegations = &metadata.Delegations{Keys: st.Delegation.Keys, Roles: []metadata.DelegatedRole{{Name: "demo", KeyIDs: st.Delegation.KeyIDs, Threshold: 1, Paths: []string{ProjectPathPattern("demo")}, Terminating: true}}}
	delegatorRaw, err := delegatorMD.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}

	cases := hostileCases(t, m1, m2)

	// tuf-js reads every document in one process.
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for i, c := range cases {
		if err := enc.Encode(map[string]any{"id": i, "doc": base64.StdEncoding.EncodeToString(c.doc), "delegator": base64.StdEncoding.EncodeToString(delegatorRaw), "role": "demo"}); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "read.mjs"))
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node read.mjs: %v\n%s", err, stderr.String())
	}
	js := map[int]reading{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var rec struct {
			ID int `json:"id"`
			reading
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("tuf-js output %q: %v", sc.Text(), err)
		}
		js[rec.ID] = rec.reading
	}
	if len(js) != len(cases) {
		t.Fatalf("tuf-js answered %d of %d documents:\n%s", len(js), len(cases), stderr.String())
	}

	agreed, refused := 0, 0
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			goTUF := goTUFReading(c.doc, delegatorMD, "demo")
			tufJS := js[i]
			if c.split && (!goTUF.Verified || !tufJS.Verified || goTUF.same(tufJS)) {
				t.Errorf("expected go-tuf and tuf-js to verify two different readings\n go-tuf: %+v\n tuf-js: %+v", goTUF, tufJS)
			}
			server, serr := serverReading(c.doc, st, t0)
			if serr != nil {
				refused++
				if c.accepted {
					t.Fatalf("the server refused a document every parser reads alike: %v\n go-tuf: %+v\n tuf-js: %+v", serr, goTUF, tufJS)
				}
				t.Logf("refused: %v", serr)
				return
			}
			if !c.accepted {
				t.Errorf("the server accepted a document it must refuse\n server: %+v\n go-tuf: %+v\n tuf-js: %+v", server, goTUF, tufJS)
			}
			if !server.same(goTUF) || !server.same(tufJS) {
				t.Fatalf("the server accepted a document the clients read differently\n server: %+v\n go-tuf: %+v\n tuf-js: %+v", server, goTUF, tufJS)
			}
			agreed++
		})
	}
	t.Logf("%d documents: %d accepted with one reading, %d refused", len(cases), agreed, refused)
}

// hostileCases builds the documents: a few well-formed ones that every parser must read
// alike (so the test cannot pass by refusing everything) and the ambiguous ones.
func hostileCases(t *testing.T, m1, m2 *OnlineSigner) []hostileCase {
	t.Helper()
	exp := t0.Add(30 * 24 * time.Hour).Format(time.RFC3339)
	file := func(path, content string) string {
		return fmt.Sprintf(`%q:{"hashes":{"sha256":%q},"length":%d}`, path, sha256Hex([]byte(content)), len(content))
	}
	fileCustom := func(path, content, custom string) string {
		return fmt.Sprintf(`%q:{"custom":%s,"hashes":{"sha256":%q},"length":%d}`, path, custom, sha256Hex([]byte(content)), len(content))
	}
	signedText := func(targets ...string) string {
		return fmt.Sprintf(`{"_type":"targets","expires":%q,"spec_version":"1.0.31","targets":{%s},"version":1}`, exp, strings.Join(targets, ","))
	}
	// sigs signs the plain (generic) reading of each signed text with each signer.
	sig := func(signed string, s *OnlineSigner) string {
		payload, err := Canonical(json.RawMessage(signed))
		if err != nil {
			// Not canonicalisable by Go: sign the text as is; nobody will verify it.
			payload = []byte(signed)
		}
		out, err := s.Sign(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`{"keyid":%q,"sig":%q}`, out.KeyID, hex.EncodeToString(out.Signature))
	}
	env := func(signed string, signers ...*OnlineSigner) []byte {
		var ss []string
		for _, s := range signers {
			ss = append(ss, sig(signed, s))
		}
		return []byte(fmt.Sprintf(`{"signatures":[%s],"signed":%s}`, strings.Join(ss, ","), signed))
	}
	a := signedText(file("demo/1.0/demo.tgz", "genuine"))
	b := signedText(file("demo/1.0/demo.tgz", "replaced bytes"), file("demo/1.0/evil.tgz", "never uploaded"))

	return []hostileCase{
		// One reading, accepted.
		{name: "canonical", doc: env(a, m1), accepted: true},
		{name: "both maintainers", doc: env(a, m1, m2), accepted: true},
		{name: "pretty-printed signed", doc: env(strings.ReplaceAll(a, ",", ",\n  "), m1), accepted: true},
		{name: "escaped key spelling", doc: bytes.Replace(env(a, m1), []byte(`"signed":`), []byte(`"\u0073igned":`), 1), accepted: true},
		{name: "unknown top-level field", doc: bytes.Replace(env(a, m1), []byte(`{"signatures"`), []byte(`{"x-note":"hi","signatures"`), 1), accepted: true},
		{name: "custom data", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", `{"yanked":true,"yank_reason":"broken \u00e9 \ud83d\ude00"}`)), m1), accepted: true},
		{name: "fractional expiry", doc: env(strings.Replace(a, exp, strings.TrimSuffix(exp, "Z")+".5Z", 1), m1), accepted: true},

		// The attack of issue #9: Go reads B, JavaScript reads A.
		{name: "signed and Signed", doc: []byte(fmt.Sprintf(`{"signatures":[%s,%s],"signed":%s,"Signed":%s}`, sig(a, m1), sig(b, m2), a, b)), split: true},
		{name: "Signed then signed", doc: []byte(fmt.Sprintf(`{"signatures":[%s,%s],"Signed":%s,"signed":%s}`, sig(a, m1), sig(b, m2), b, a))},
		{name: "Signed alone", doc: bytes.Replace(env(a, m1), []byte(`"signed":`), []byte(`"Signed":`), 1)},
		{name: "long s in signed", doc: bytes.Replace(env(a, m1), []byte(`"signed":`), []byte(`"ſigned":`), 1)},
		{name: "duplicate signed", doc: []byte(fmt.Sprintf(`{"signatures":[%s,%s],"signed":%s,"signed":%s}`, sig(a, m1), sig(b, m2), a, b))},
		{name: "duplicate signatures", doc: []byte(fmt.Sprintf(`{"signatures":[%s],"signed":%s,"signatures":[%s]}`, sig(b, m2), a, sig(a, m1)))},
		{name: "SIGNATURES", doc: bytes.Replace(env(a, m1), []byte(`"signatures":`), []byte(`"SIGNATURES":`), 1)},
		{name: "duplicate target path", doc: env(signedText(file("demo/1.0/demo.tgz", "genuine"), file("demo/1.0/demo.tgz", "replaced bytes")), m1)},
		{name: "Targets and targets", doc: env(strings.Replace(signedText(file("demo/1.0/demo.tgz", "genuine")), `"version":1`, `"Targets":{`+file("demo/1.0/evil.tgz", "never uploaded")+`},"version":1`, 1), m1)},
		{name: "Version", doc: env(strings.Replace(a, `"version":1`, `"Version":1`, 1), m1)},
		{name: "Length beside length", doc: env(strings.Replace(a, `"length":7`, `"length":7,"LENGTH":8`, 1), m1)},
		{name: "Hashes", doc: env(strings.Replace(a, `"hashes":`, `"Hashes":`, 1), m1)},
		{name: "Custom", doc: env(signedText(strings.Replace(fileCustom("demo/1.0/demo.tgz", "genuine", `{"yanked":true}`), `"custom":`, `"Custom":`, 1)), m1)},
		{name: "Yanked in custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", `{"Yanked":true}`)), m1)},
		{name: "duplicate yanked in custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", `{"yanked":false,"yanked":true}`)), m1)},
		{name: "KEYID in a signature", doc: bytes.Replace(env(a, m1), []byte(`"keyid":`), []byte(`"KEYID":`), 1)},
		{name: "lone high surrogate in a path", doc: env(signedText(file(`demo/1.0/x\ud800.tgz`, "genuine")), m1)},
		{name: "lone low surrogate in custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", `{"note":"\udc00"}`)), m1)},
		{name: "invalid UTF-8 in custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", "{\"note\":\"\xff\xfe\"}")), m1)},
		{name: "UTF-8-encoded surrogate", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", "{\"note\":\"\xed\xa0\x80\"}")), m1)},
		{name: "version beyond 2^53", doc: env(strings.Replace(a, `"version":1`, `"version":9007199254740993`, 1), m1)},
		{name: "length beyond 2^53", doc: env(strings.Replace(a, `"length":7`, `"length":9007199254740999`, 1), m1)},
		{name: "fractional length", doc: env(strings.Replace(a, `"length":7`, `"length":7.0`, 1), m1)},
		{name: "exponent version", doc: env(strings.Replace(a, `"version":1`, `"version":1e0`, 1), m1)},
		{name: "negative zero in custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", `{"n":-0}`)), m1)},
		{name: "upper-case hash", doc: env(strings.Replace(a, sha256Hex([]byte("genuine")), strings.ToUpper(sha256Hex([]byte("genuine"))), 1), m1)},
		{name: "null custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", `null`)), m1)},
		{name: "UTF-16 key order differs", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", "{\"\uff21\":1,\"\U0001F600\":2}")), m1)},
		{name: "__proto__ in custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", `{"__proto__":{"yanked":true}}`)), m1)},
		{name: "offset expiry", doc: env(strings.Replace(a, exp, strings.TrimSuffix(exp, "Z")+"+00:00", 1), m1)},
		{name: "byte order mark", doc: append([]byte("\xef\xbb\xbf"), env(a, m1)...)},
		{name: "trailing document", doc: append(env(a, m1), env(b, m2)...)},
		{name: "deep custom", doc: env(signedText(fileCustom("demo/1.0/demo.tgz", "genuine", strings.Repeat(`{"a":`, 70)+"1"+strings.Repeat("}", 70))), m1)},
		{name: "extra invalid signature", doc: []byte(fmt.Sprintf(`{"signatures":[%s,%s],"signed":%s}`, sig(a, m1), sig(b, m2), a))},
		{name: "extra stranger signature", doc: env(a, m1, newTestSigner(t, KeyEd25519))},
		{name: "same key twice", doc: []byte(fmt.Sprintf(`{"signatures":[%s,%s],"signed":%s}`, sig(a, m1), sig(a, m1), a))},
	}
}

// FuzzProjectRoleReading holds the role-submission path to one reading. The fuzzer writes
// the "signed" object; the harness signs its plain reading with a maintainer key and
// submits {"signatures": [...], "signed": <fuzzed>} to ValidateProposal. Whenever the
// server accepts, an independent strict reading (exact, case-sensitive key lookups in a
// plain decode, as JavaScript does) must find the same version, expiry and targets.
func FuzzProjectRoleReading(f *testing.F) {
	m1 := newTestSigner(f, KeyEd25519)
	st := ProjectState{Delegation: delegationFor("demo", 1, m1)}
	exp := t0.Add(30 * 24 * time.Hour).Format(time.RFC3339)
	sizes := map[string]int64{}
	for _, c := range blobContents {
		sizes[sha256Hex([]byte(c))] = int64(len(c))
	}
	for _, seed := range []string{
		fmt.Sprintf(`{"_type":"targets","expires":%q,"spec_version":"1.0.31","targets":{"demo/1.0/demo.tgz":{"hashes":{"sha256":%q},"length":7}},"version":1}`, exp, sha256Hex([]byte("genuine"))),
		fmt.Sprintf(`{"_type":"targets","expires":%q,"spec_version":"1.0.31","targets":{"demo/1.0/a.tgz":{"custom":{"yanked":true},"hashes":{"sha256":%q},"length":14}},"version":1,"Version":2}`, exp, sha256Hex([]byte("never uploaded"))),
		fmt.Sprintf(`{"_type":"targets","expires":%q,"spec_version":"1.0.31","targets":{},"version":1}`, exp),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, signed []byte) {
		payload, err := Canonical(json.RawMessage(signed))
		if err != nil {
			return // not JSON Go can canonicalise: nothing valid to sign
		}
		s, err := m1.Sign(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		doc := []byte(fmt.Sprintf(`{"signatures":[{"keyid":%q,"sig":%q}],"signed":%s}`, s.KeyID, hex.EncodeToString(s.Signature), signed))
		acc, err := ValidateProposal(doc, st, t0, func([]string) (map[string]int64, error) { return sizes, nil })
		if err != nil {
			return
		}
		var plain map[string]any
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&plain); err != nil {
			t.Fatalf("accepted a document a plain decoder refuses: %v", err)
		}
		sg, _ := plain["signed"].(map[string]any)
		if sg == nil {
			t.Fatalf("accepted a document whose exact \"signed\" key is missing: %s", doc)
		}
		if v, _ := sg["version"].(json.Number); v.String() != fmt.Sprint(acc.Version) {
			t.Fatalf("server read version %d, the exact key says %v: %s", acc.Version, sg["version"], doc)
		}
		if e, _ := sg["expires"].(string); e == "" || !acc.Expires.Equal(mustTime(t, e)) {
			t.Fatalf("server read expiry %s, the exact key says %v: %s", acc.Expires, sg["expires"], doc)
		}
		targets, _ := sg["targets"].(map[string]any)
		if len(targets) != len(acc.NewFiles) {
			t.Fatalf("server read %d targets, the exact key lists %d: %s", len(acc.NewFiles), len(targets), doc)
		}
		for _, nf := range acc.NewFiles {
			tf, _ := targets[nf.Path].(map[string]any)
			hashes, _ := tf["hashes"].(map[string]any)
			if tf == nil || hashes["sha256"] != nf.SHA256 || tf["length"].(json.Number).String() != fmt.Sprint(nf.Length) {
				t.Fatalf("server read target %s as %d bytes sha256 %s, the exact keys say %v: %s", nf.Path, nf.Length, nf.SHA256, tf, doc)
			}
			got, want := "", ""
			if nf.Custom != nil {
				c, _ := Canonical(nf.Custom)
				got = string(c)
			}
			if c, ok := tf["custom"]; ok {
				cb, _ := Canonical(c)
				want = string(cb)
			}
			if got != want {
				t.Fatalf("server read custom %s of %s, the exact key says %s: %s", got, nf.Path, want, doc)
			}
		}
	})
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("accepted an expiry %q a plain reader cannot parse: %v", s, err)
	}
	return v
}
