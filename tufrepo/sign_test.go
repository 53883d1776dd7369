package tufrepo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// rootDelegating returns a root that delegates role to signers with threshold t.
func rootDelegating(tb testing.TB, role string, t int, signers ...*OnlineSigner) *metadata.Metadata[metadata.RootType] {
	tb.Helper()
	root := metadata.Root(t0.Add(OfflineExpiry))
	for _, s := range signers {
		if err := root.Signed.AddKey(s.Key, role); err != nil {
			tb.Fatal(err)
		}
	}
	root.Signed.Roles[role].Threshold = t
	return root
}

func TestSignEnvelopeVerifiesWithGoTUF(t *testing.T) {
	ctx := context.Background()
	for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
		t.Run(string(kt), func(t *testing.T) {
			s := newTestSigner(t, kt)

			// Snapshot.
			idx := &SnapshotIndex{}
			idx.Set(RoleTargets, 1, 100)
			idx.Set("proj", 3, 300)
			snapRaw, err := SignEnvelope(ctx, idx.EncodeSigned(5, t0.Add(SnapshotExpiry)), s)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := metadata.Snapshot().FromBytes(snapRaw)
			if err != nil {
				t.Fatalf("go-tuf does not parse the snapshot envelope: %v", err)
			}
			if err := rootDelegating(t, RoleSnapshot, 1, s).VerifyDelegate(RoleSnapshot, snap); err != nil {
				t.Fatalf("go-tuf does not verify the snapshot: %v", err)
			}
			if snap.Signed.Version != 5 || snap.Signed.Meta["proj.json"].Version != 3 || snap.Signed.Meta["proj.json"].Length != 300 {
				t.Fatalf("parsed snapshot has the wrong content: %+v", snap.Signed)
			}

			// Timestamp.
			tsSigned, err := BuildTimestamp(7, 5, snapRaw, t0.Add(TimestampExpiry))
			if err != nil {
				t.Fatal(err)
			}
			tsRaw, err := SignEnvelope(ctx, tsSigned, s)
			if err != nil {
				t.Fatal(err)
			}
			ts, err := metadata.Timestamp().FromBytes(tsRaw)
			if err != nil {
				t.Fatalf("go-tuf does not parse the timestamp envelope: %v", err)
			}
			if err := rootDelegating(t, RoleTimestamp, 1, s).VerifyDelegate(RoleTimestamp, ts); err != nil {
				t.Fatalf("go-tuf does not verify the timestamp: %v", err)
			}
			mf := ts.Signed.Meta["snapshot.json"]
			if mf == nil || mf.Version != 5 {
				t.Fatalf("timestamp meta: %+v", ts.Signed.Meta)
			}
			if err := mf.VerifyLengthHashes(snapRaw); err != nil {
				t.Fatalf("timestamp's snapshot length/hash do not match the snapshot: %v", err)
			}

			// A root delegating to another key refuses it.
			other := newTestSigner(t, kt)
			if err := rootDelegating(t, RoleSnapshot, 1, other).VerifyDelegate(RoleSnapshot, snap); err == nil {
				t.Fatal("go-tuf verified a snapshot signed by an undelegated key")
			}
			// Changing one byte of the signed value breaks the signature.
			tampered := bytes.Replace(snapRaw, []byte(`"version":3`), []byte(`"version":4`), 1)
			tsnap, err := metadata.Snapshot().FromBytes(tampered)
			if err != nil {
				t.Fatal(err)
			}
			if err := rootDelegating(t, RoleSnapshot, 1, s).VerifyDelegate(RoleSnapshot, tsnap); err == nil {
				t.Fatal("go-tuf verified a tampered snapshot")
			}
		})
	}
}

func TestSignEnvelopeSeveralSigners(t *testing.T) {
	ctx := context.Background()
	a, b, c := newTestSigner(t, KeyEd25519), newTestSigner(t, KeyECDSAP256), newTestSigner(t, KeyEd25519)
	idx := &SnapshotIndex{}
	raw, err := SignEnvelope(ctx, idx.EncodeSigned(1, t0), a, b)
	if err != nil {
		t.Fatal(err)
	}
	sigs := sigsOf(t, raw)
	if len(sigs) != 2 || sigs[0].KeyID != a.KeyID || sigs[1].KeyID != b.KeyID {
		t.Fatalf("signatures %+v, want one by %s then one by %s", sigs, a.KeyID, b.KeyID)
	}
	snap, err := metadata.Snapshot().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := rootDelegating(t, RoleSnapshot, 2, a, b, c).VerifyDelegate(RoleSnapshot, snap); err != nil {
		t.Fatalf("2 of 3 signatures do not verify: %v", err)
	}
	if err := rootDelegating(t, RoleSnapshot, 3, a, b, c).VerifyDelegate(RoleSnapshot, snap); err == nil {
		t.Fatal("2 signatures met a threshold of 3")
	}
}

func TestEnvelopeShape(t *testing.T) {
	signed := []byte(`{"a":1}`)
	if got := string(Envelope(signed, nil)); got != `{"signatures":[],"signed":{"a":1}}` {
		t.Fatalf("Envelope with no signatures = %s", got)
	}
	got := Envelope(signed, []metadata.Signature{{KeyID: "ab", Signature: []byte{0xde, 0xad}}, {KeyID: "cd", Signature: []byte{1}}})
	if string(got) != `{"signatures":[{"keyid":"ab","sig":"dead"},{"keyid":"cd","sig":"01"}],"signed":{"a":1}}` {
		t.Fatalf("Envelope = %s", got)
	}
	if !json.Valid(got) {
		t.Fatal("Envelope is not valid JSON")
	}
	// The signed bytes are embedded exactly, never re-serialised.
	if s := mustSigned(t, got); !bytes.Equal(s, signed) {
		t.Fatalf("signedOf(Envelope) = %s", s)
	}
}

func TestNewOnlineSignerKeyID(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
		priv, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSigner(priv)
		if err != nil {
			t.Fatal(err)
		}
		o, err := NewOnlineSigner(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := PublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		if o.KeyID != KeyID(pk) || KeyID(o.Key) != o.KeyID {
			t.Fatalf("%s: online signer key ID %s, want %s", kt, o.KeyID, KeyID(pk))
		}
	}
}

// failingSigner is a signature.Signer whose SignMessage fails.
type failingSigner struct{ signature.Signer }

func (f failingSigner) SignMessage(io.Reader, ...signature.SignOption) ([]byte, error) {
	return nil, errInjected
}

func TestSignEnvelopeSignerFailure(t *testing.T) {
	good := newTestSigner(t, KeyEd25519)
	bad := &OnlineSigner{Signer: failingSigner{good.Signer}, Key: good.Key, KeyID: good.KeyID}
	_, err := SignEnvelope(context.Background(), []byte(`{}`), good, bad)
	if !errors.Is(err, errInjected) {
		t.Fatalf("SignEnvelope error = %v, want the signer's error", err)
	}
	wantContains(t, err, good.KeyID)
}

// ecdsaMetadata builds metadata whose signed value holds ECDSA P-256 public keys (PEM, with
// newlines): a root with ECDSA admin keys, a targets delegating claimed to ECDSA keys, and a
// recently-claimed delegating a project to an ECDSA maintainer key.
func ecdsaMetadata(t *testing.T) (off *OfflineMetadata, rc []byte, online, maintainer *OnlineSigner) {
	t.Helper()
	admins := newTestSigners(t, 2, KeyECDSAP256)
	online = newTestSigner(t, KeyECDSAP256)
	off, err := Ceremony(context.Background(), CeremonyConfig{
		RootSigners: admins, RootThreshold: 2, TargetsSigners: admins[:1], TargetsThreshold: 1,
		ClaimedSigners: admins[1:], ClaimedThreshold: 1,
		Timestamp: online.Key, Snapshot: online.Key, RecentlyClaimed: online.Key, Now: t0,
	})
	if err != nil {
		t.Fatalf("Ceremony with ECDSA admin keys: %v", err)
	}
	maintainer = newTestSigner(t, KeyECDSAP256)
	signed, err := buildDelegator(2, t0.Add(RecentlyClaimedExpiry), []ProjectDelegation{delegationFor("proj", 1, maintainer)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(signed, []byte("-----BEGIN PUBLIC KEY-----\n")) {
		t.Fatal("test premise: canonical JSON of an ECDSA key holds a raw newline")
	}
	rc, err = SignEnvelope(context.Background(), signed, online)
	if err != nil {
		t.Fatal(err)
	}
	return off, rc, online, maintainer
}

// Regression (fixed in 6708e4d): metadata holding ECDSA PEM public keys was invalid JSON.
func TestECDSAKeysInMetadataAreValidJSON(t *testing.T) {
	off, rc, online, maintainer := ecdsaMetadata(t)
	for name, raw := range map[string][]byte{"root": off.Root, "targets": off.Targets, "claimed": off.Claimed, "recently-claimed": rc} {
		if !json.Valid(raw) {
			t.Errorf("%s with an ECDSA key is not valid JSON", name)
		}
	}
	if err := VerifyOffline(off); err != nil {
		t.Errorf("VerifyOffline with ECDSA admin keys: %v", err)
	}
	if err := CheckOnlineKeys(off.Root, off.Targets, Signers{Timestamp: online, Snapshot: online, RecentlyClaimed: online}); err != nil {
		t.Errorf("CheckOnlineKeys: %v", err)
	}
	del, err := metadata.Targets().FromBytes(rc)
	if err != nil {
		t.Fatalf("go-tuf cannot parse recently-claimed delegating to an ECDSA maintainer: %v", err)
	}
	proj, err := metadata.Targets().FromBytes(signRole(t, newProjectRole(1, t0.Add(ProjectRoleExpiry), nil), maintainer))
	if err != nil {
		t.Fatal(err)
	}
	if err := del.VerifyDelegate("proj", proj); err != nil {
		t.Fatalf("project role signed by the ECDSA maintainer does not verify through recently-claimed: %v", err)
	}
	// The online key's signature over the delegator verifies too (go-tuf re-canonicalises
	// the parsed, unescaped value).
	targets, err := metadata.Targets().FromBytes(off.Targets)
	if err != nil {
		t.Fatal(err)
	}
	if err := targets.VerifyDelegate(RoleRecentlyClaimed, del); err != nil {
		t.Fatalf("recently-claimed does not verify against targets: %v", err)
	}
}

// reCanonical parses a JSON value and encodes it canonically, as a client does before it
// verifies a signature.
func reCanonical(tb testing.TB, v []byte) []byte {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		tb.Fatalf("parsing %.80q: %v", v, err)
	}
	out, err := cjson.EncodeCanonical(x)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// checkEnvelopeRoundTrip: the file is valid JSON and its signed value re-canonicalises to
// exactly the signed bytes.
func checkEnvelopeRoundTrip(tb testing.TB, signed []byte) {
	tb.Helper()
	raw := Envelope(signed, []metadata.Signature{{KeyID: "ab", Signature: []byte{1}}})
	if !json.Valid(raw) {
		tb.Fatalf("Envelope(%q) is not valid JSON: %q", signed, raw)
	}
	inner, err := signedOf(raw)
	if err != nil {
		tb.Fatal(err)
	}
	if got := reCanonical(tb, inner); !bytes.Equal(got, signed) {
		tb.Fatalf("signed value re-canonicalises to %q, want the signed bytes %q", got, signed)
	}
}

func TestEnvelopeEscapesControlCharacters(t *testing.T) {
	var all []byte
	for c := range byte(0x20) {
		all = append(all, c)
	}
	for _, s := range []string{"plain", string(all), `a\nb`, "quote\\\"\n", "tab\there\r\n", "é\u2028\u2029\x7f", "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"} {
		signed, err := cjson.EncodeCanonical(map[string]any{"k": s, "n": 1, "list": []any{s}})
		if err != nil {
			t.Fatal(err)
		}
		checkEnvelopeRoundTrip(t, signed)
	}
	// Metadata with no control characters is embedded byte for byte.
	plain := []byte(`{"a":"b"}`)
	if raw := Envelope(plain, nil); !bytes.Contains(raw, plain) {
		t.Fatalf("Envelope changed plain bytes: %s", raw)
	}

	// End to end: a project role whose custom data holds control characters is signed over
	// the canonical bytes, served escaped, and verifies with go-tuf.
	m := newTestSigner(t, KeyECDSAP256)
	md := newProjectRole(1, t0.Add(ProjectRoleExpiry), map[string]*metadata.TargetFiles{"p/1/f": targetFile([]byte("f"))})
	md.Signed.Targets["p/1/f"].Custom = rawMsg(`{"notes":"line 1\nline 2\ttab\u0001"}`)
	raw := signRole(t, md, m)
	if !json.Valid(raw) {
		t.Fatalf("project role with control characters in custom is not valid JSON")
	}
	parsed, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := delegationVerifier(t, "p", m).VerifyDelegate("p", parsed); err != nil {
		t.Fatalf("go-tuf does not verify it: %v", err)
	}
}

func FuzzEnvelopeEscape(f *testing.F) {
	for _, s := range []string{"", "a", "\n", "\x00\x1f", `\u0000`, `"`, "é\x7f", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		signed, err := cjson.EncodeCanonical(map[string]any{"s": s, s: []any{s, 1}})
		if err != nil {
			t.Skip(err)
		}
		checkEnvelopeRoundTrip(t, signed)
	})
}

// otherMessageSigner signs another message than the one it is given, with the right key,
// and ignores any digest option: what a KMS or HSM answering for the wrong request does.
type otherMessageSigner struct{ signature.Signer }

func (o otherMessageSigner) SignMessage(m io.Reader, _ ...signature.SignOption) ([]byte, error) {
	b, err := io.ReadAll(m)
	if err != nil {
		return nil, err
	}
	return o.Signer.SignMessage(bytes.NewReader(append(b, 'x')))
}

// Sign checks every signature against the payload it was asked to sign, for each key
// type, including the ECDSA path that hashes the payload once and signs the digest.
func TestSignRefusesSignatureOverOtherMessage(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
		t.Run(string(kt), func(t *testing.T) {
			good := newTestSigner(t, kt)
			good.Retry = Retry{Attempts: 1}
			payload := []byte(`{"_type":"snapshot"}`)
			sig, err := good.Sign(context.Background(), payload)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifySignature(good.Key, payload, sig.Signature); err != nil {
				t.Fatalf("the signature Sign returned does not verify over the payload: %v", err)
			}
			bad := &OnlineSigner{Signer: otherMessageSigner{good.Signer}, Key: good.Key, KeyID: good.KeyID, Retry: Retry{Attempts: 1}}
			_, err = bad.Sign(context.Background(), payload)
			wantContains(t, err, "does not verify with key "+good.KeyID)
		})
	}
}

// hasControl (eight bytes at a time) agrees with a byte loop, wherever the control byte
// sits and whatever the bytes around it (high bytes of UTF-8 included).
func TestHasControlMatchesByteLoop(t *testing.T) {
	slow := func(c []byte) bool {
		for _, b := range c {
			if b < 0x20 {
				return true
			}
		}
		return false
	}
	fills := []byte{' ', '!', 'a', 0x7f, 0x80, 0xc3, 0xff}
	for n := 0; n <= 40; n++ {
		for _, fill := range fills {
			c := bytes.Repeat([]byte{fill}, n)
			if hasControl(c) != slow(c) {
				t.Fatalf("%d bytes of %#x: hasControl %v", n, fill, hasControl(c))
			}
			for i := range n {
				for _, ctl := range []byte{0, '\n', 0x1f} {
					d := bytes.Clone(c)
					d[i] = ctl
					if !hasControl(d) {
						t.Fatalf("%d bytes of %#x with %#x at %d: not found", n, fill, ctl, i)
					}
				}
			}
		}
	}
}
