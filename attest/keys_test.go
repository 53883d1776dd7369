package attest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/attest/attesttest"
)

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestVerifyWithKeys: a bundle signed with a maintainer key verifies only against that key
// under its TUF key ID, records the maintainer identity, and every other case is refused
// with its own code.
func TestVerifyWithKeys(t *testing.T) {
	s := attesttest.New(t)
	tr := trusted(t, s)
	file := attesttest.File("hello-1.0.0.tar.gz", []byte("hello"))
	other := attesttest.File("other.tar.gz", []byte("other"))
	maint, stranger := newECKey(t), newECKey(t)
	const keyID = "aa11"
	keys := attest.MaintainerKeys{keyID: {Project: "hello", KeyID: keyID, Public: maint.Public()}}

	good := s.KeyBundle(t, maint, keyID, attesttest.Options{}, file)
	v, err := attest.VerifyWithKeys(tr, good, file.SHA256, keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := attest.MaintainerIdentity("hello", keyID); v.Identity != want || v.Identity.SAN != "tuf-key:aa11" || v.Identity.Issuer != "cairn-maintainer:hello" {
		t.Fatalf("identity %+v, want %+v", v.Identity, want)
	}
	if v.LogTime.IsZero() || v.PredicateType != attesttest.SLSAProvenance {
		t.Fatalf("verified %+v", v.Attestation)
	}

	for _, c := range []struct {
		name   string
		raw    []byte
		file   string
		keys   attest.MaintainerKeys
		code   api.Code
		detail string
	}{
		{"no keys (keyless only)", good, file.SHA256, nil, api.CodeAttestationKeyUnknown, "not a current maintainer key"},
		{"another key under the maintainer's ID", s.KeyBundle(t, stranger, keyID, attesttest.Options{}, file), file.SHA256, keys, api.CodeAttestationNotIncluded, ""},
		{"unknown key ID", s.KeyBundle(t, stranger, "bb22", attesttest.Options{}, file), file.SHA256, keys, api.CodeAttestationKeyUnknown, "bb22"},
		{"key of another project", good, file.SHA256, attest.MaintainerKeys{"cc33": {Project: "other", KeyID: "cc33", Public: maint.Public()}}, api.CodeAttestationKeyUnknown, ""},
		{"wrong digest", good, other.SHA256, keys, api.CodeAttestationSubject, "another file"},
		{"no inclusion proof", s.KeyBundle(t, maint, keyID, attesttest.Options{NoInclusionProof: true}, file), file.SHA256, keys, api.CodeAttestationNotIncluded, "no inclusion proof"},
		{"another Sigstore's log", attesttest.New(t).KeyBundle(t, maint, keyID, attesttest.Options{}, file), file.SHA256, keys, api.CodeAttestationNotIncluded, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := attest.VerifyWithKeys(tr, c.raw, c.file, c.keys)
			if api.CodeOf(err) != c.code || !strings.Contains(err.Error(), c.detail) {
				t.Fatalf("got %v (%s), want %s containing %q", err, api.CodeOf(err), c.code, c.detail)
			}
		})
	}
}

// TestVerifyRefusesCertificateWithMaintainerNames: a certificate identity may not use the
// names of maintainer-key identities, or a policy trusting a project's maintainers would
// trust it.
func TestVerifyRefusesCertificateWithMaintainerNames(t *testing.T) {
	s := attesttest.New(t)
	tr := trusted(t, s)
	file := attesttest.File("hello-1.0.0.tar.gz", []byte("hello"))
	raw := s.Bundle(t, alice, "cairn-maintainer:hello", attesttest.Options{}, file)
	if _, err := attest.Verify(tr, raw, file.SHA256); api.CodeOf(err) != api.CodeAttestationInvalid || !strings.Contains(err.Error(), "reserves") {
		t.Fatalf("got %v", err)
	}
}

// BenchmarkVerifyWithKeys is BenchmarkVerify for a bundle signed with a maintainer key
// (ECDSA P-256, Rekor v1 entry): the same 1 ms per bundle goal.
func BenchmarkVerifyWithKeys(b *testing.B) {
	s := attesttest.New(b)
	tr, err := attest.ParseTrustedRoot(s.TrustedRoot(b))
	if err != nil {
		b.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	file := attesttest.File("demo.tgz", []byte("release bytes"))
	keys := attest.MaintainerKeys{"aa11": {Project: "demo", KeyID: "aa11", Public: k.Public()}}
	raw := s.KeyBundle(b, k, "aa11", attesttest.Options{}, file)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := attest.VerifyWithKeys(tr, raw, file.SHA256, keys); err != nil {
			b.Fatal(err)
		}
	}
}

// A key the user gives (cairn get oci:// --key, as cosign verify --key) verifies a
// public-key bundle whatever its hint says; the signature decides. Another key is refused,
// and a keyless bundle still verifies by its certificate.
func TestVerifyWithLocalKey(t *testing.T) {
	s := attesttest.New(t)
	tr := trusted(t, s)
	file := attesttest.File("app.tar.gz", []byte("app"))
	mine, other := newECKey(t), newECKey(t)
	raw := s.KeyBundle(t, mine, "cosign-style hint, not a TUF key ID", attesttest.Options{}, file)
	v, err := attest.VerifyWithLocalKey(tr, raw, file.SHA256, mine.Public())
	if err != nil {
		t.Fatal(err)
	}
	fp, err := attest.KeyFingerprint(mine.Public())
	if err != nil {
		t.Fatal(err)
	}
	if v.Identity != attest.LocalKeyIdentity(fp) || !strings.HasPrefix(v.Identity.SAN, "key:sha256:") || v.Identity.Issuer != attest.LocalKeyIssuer {
		t.Fatalf("identity %+v", v.Identity)
	}
	if _, err := attest.VerifyWithLocalKey(tr, raw, file.SHA256, other.Public()); err == nil {
		t.Fatal("another key verified the bundle")
	}
	if _, err := attest.VerifyWithKeys(tr, raw, file.SHA256, nil); api.CodeOf(err) != api.CodeAttestationKeyUnknown {
		t.Fatalf("without the local key: %v", err)
	}
	keyless := s.Bundle(t, "alice@hello.dev", "https://issuer.example", attesttest.Options{}, file)
	if v, err := attest.VerifyWithLocalKey(tr, keyless, file.SHA256, mine.Public()); err != nil || v.Identity.SAN != "alice@hello.dev" {
		t.Fatalf("a keyless bundle with a local key given: %+v, %v", v, err)
	}
}
