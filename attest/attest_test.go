package attest_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/attest/attesttest"
)

const (
	alice  = "alice@example.com"
	issuer = "https://accounts.example.com"
)

func trusted(t *testing.T, s *attesttest.Sigstore) *attest.TrustedRoot {
	t.Helper()
	tr, err := attest.ParseTrustedRoot(s.TrustedRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestVerifyRecordsIdentityAndPredicate(t *testing.T) {
	s := attesttest.New(t)
	tr := trusted(t, s)
	file := attesttest.File("demo.tgz", []byte("release bytes"))
	other := attesttest.File("other.tgz", []byte("other bytes"))
	for _, tc := range []struct {
		name string
		o    attesttest.Options
	}{
		{"log time", attesttest.Options{}},
		{"with RFC 3161 timestamp", attesttest.Options{Timestamp: true, PredicateType: "https://cyclonedx.org/bom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := s.Bundle(t, alice, issuer, tc.o, other, file)
			v, err := attest.Verify(tr, raw, file.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.o.PredicateType
			if want == "" {
				want = attesttest.SLSAProvenance
			}
			if v.Identity.SAN != alice || v.Identity.Issuer != issuer || v.PredicateType != want || v.FileSHA256 != file.SHA256 {
				t.Errorf("verified %+v", v.Attestation)
			}
			// The earliest verified time: the TSA's (now) or the log's integrated time (now + 5 min).
			if d := time.Until(v.LogTime); d < -time.Minute || d > 10*time.Minute {
				t.Errorf("log time %v is not a verified time of the bundle", v.LogTime)
			}
			if !bytes.Equal(v.Bundle, raw) || len(v.BundleSHA256) != 64 || len(v.SignatureSHA256) != 64 {
				t.Errorf("bundle identity %q %q", v.BundleSHA256, v.SignatureSHA256)
			}
		})
	}
}

// TestVerifyRefusesBadBundles is the bad-input table: each refusal has its own code.
func TestVerifyRefusesBadBundles(t *testing.T) {
	s := attesttest.New(t)
	tr := trusted(t, s)
	file := attesttest.File("demo.tgz", []byte("release bytes"))
	good := s.Bundle(t, alice, issuer, attesttest.Options{}, file)
	otherSigstore := attesttest.New(t)
	tamperedProof := tamper(t, good, func(b map[string]any) {
		proof := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)["inclusionProof"].(map[string]any)
		proof["rootHash"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	})
	for _, tc := range []struct {
		name   string
		raw    []byte
		digest string
		code   api.Code
		says   string
	}{
		{"wrong digest", good, attesttest.File("x", []byte("another file")).SHA256, api.CodeAttestationSubject, "attests another file"},
		{"no inclusion proof", s.Bundle(t, alice, issuer, attesttest.Options{NoInclusionProof: true}, file), file.SHA256, api.CodeAttestationNotIncluded, "no inclusion proof"},
		{"inclusion proof for another tree", tamperedProof, file.SHA256, api.CodeAttestationNotIncluded, "does not verify"},
		{"expired certificate, no timestamp", s.Bundle(t, alice, issuer, attesttest.Options{LogTime: time.Now().Add(30 * time.Minute)}, file), file.SHA256, api.CodeAttestationInvalid, "was not valid when the log recorded"},
		{"another Sigstore's CA and log", otherSigstore.Bundle(t, alice, issuer, attesttest.Options{}, file), file.SHA256, api.CodeAttestationNotIncluded, "trusted root"},
		{"oversized", append(bytes.Repeat([]byte(" "), attest.MaxBundleBytes), good...), file.SHA256, api.CodeTooLarge, "at most"},
		{"malformed JSON", good[:len(good)-3], file.SHA256, api.CodeBundleMalformed, "not valid JSON"},
		{"not a bundle", []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","foo":1}`), file.SHA256, api.CodeBundleMalformed, "not a Sigstore bundle"},
		{"duplicate key", append([]byte(`{"mediaType":"x",`), good[1:]...), file.SHA256, api.CodeAmbiguousJSON, "could read it differently"},
		{"case-variant key", append([]byte(`{"MediaType":"x",`), good[1:]...), file.SHA256, api.CodeAmbiguousJSON, "could read it differently"},
		{"v0.1 media type", s.Bundle(t, alice, issuer, attesttest.Options{MediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1"}, file), file.SHA256, api.CodeBundleMediaType, "not accepted"},
		{"unknown media type", s.Bundle(t, alice, issuer, attesttest.Options{MediaType: "application/x-cairn"}, file), file.SHA256, api.CodeBundleMediaType, "not accepted"},
		{"bad digest argument", good, "ABC", api.CodeBadRequest, "sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := attest.Verify(tr, tc.raw, tc.digest)
			if err == nil {
				t.Fatal("accepted")
			}
			if api.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("got %s %v; want %s saying %q", api.CodeOf(err), err, tc.code, tc.says)
			}
		})
	}
}

func TestParseTrustedRootRefusesJunk(t *testing.T) {
	for _, raw := range [][]byte{[]byte(`{}`), []byte(`not json`), []byte(`{"mediaType":"a","mediaType":"b"}`)} {
		if _, err := attest.ParseTrustedRoot(raw); err == nil {
			t.Errorf("ParseTrustedRoot(%s) accepted", raw)
		}
	}
}

func tamper(t *testing.T, raw []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	edit(b)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkVerify is the cost of verifying one keyless bundle offline (what cairn get and
// cairn attestations pay per attestation). The goal: 1,000 bundles in at most 1 s
// on one core, i.e. at most 1 ms per op.
func BenchmarkVerify(b *testing.B) {
	s := attesttest.New(b)
	tr, err := attest.ParseTrustedRoot(s.TrustedRoot(b))
	if err != nil {
		b.Fatal(err)
	}
	file := attesttest.File("demo.tgz", []byte("release bytes"))
	raw := s.Bundle(b, alice, issuer, attesttest.Options{}, file)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := attest.Verify(tr, raw, file.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}
