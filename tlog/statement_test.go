package tlog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
)

func onlineSigner(t testing.TB, kt tufrepo.KeyType) *tufrepo.OnlineSigner {
	t.Helper()
	priv, err := tufrepo.GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestPAE(t *testing.T) {
	// The DSSE specification's example.
	got := string(tlog.PAE("http://example.com/HelloWorld", []byte("hello world")))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
}

func TestSignedStatementVerifiesWithItsKeyOnly(t *testing.T) {
	for _, kt := range []tufrepo.KeyType{tufrepo.KeyEd25519, tufrepo.KeyECDSAP256} {
		t.Run(string(kt), func(t *testing.T) {
			s := onlineSigner(t, kt)
			m := tlog.Metadata{Role: "timestamp", Version: 42, Length: 512, SHA256: tlog.SHA256Hex([]byte("ts"))}
			signed, err := tlog.Sign(context.Background(), s, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.VerifySignature(signed.Envelope, s.Key); err != nil {
				t.Fatalf("own signature: %v", err)
			}
			st, err := tlog.ParseStatement(signed.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckStatement(st, m); err != nil {
				t.Fatal(err)
			}
			if st.Subject[0].Name != "42.timestamp.json" || st.Predicate.KeyID != s.KeyID {
				t.Fatalf("statement %+v", st)
			}
			for name, mm := range map[string]tlog.Metadata{
				"version": {Role: "timestamp", Version: 43, Length: 512, SHA256: m.SHA256},
				"role":    {Role: "snapshot", Version: 42, Length: 512, SHA256: m.SHA256},
				"length":  {Role: "timestamp", Version: 42, Length: 513, SHA256: m.SHA256},
				"sha256":  {Role: "timestamp", Version: 42, Length: 512, SHA256: tlog.SHA256Hex([]byte("other"))},
			} {
				if err := tlog.CheckStatement(st, mm); err == nil {
					t.Errorf("statement accepted for another %s", name)
				}
			}
			// Another key of the same type, and a changed payload, are refused.
			other := onlineSigner(t, kt)
			env := signed.Envelope
			env.Signatures[0].KeyID = other.KeyID
			if err := tlog.VerifySignature(env, other.Key); err == nil {
				t.Error("signature verified with another key")
			}
			env = signed.Envelope
			var raw map[string]any
			_ = json.Unmarshal(env.Payload, &raw)
			raw["predicateType"] = "x"
			env.Payload, _ = json.Marshal(raw)
			if err := tlog.VerifySignature(env, s.Key); err == nil {
				t.Error("signature verified over a changed payload")
			}
		})
	}
}

// A signer that can only make pure Ed25519 signatures cannot log: Rekor v2 would refuse it.
func TestPureEd25519SignerRefused(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pure, err := signature.LoadED25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), pure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tlog.Sign(context.Background(), o, tlog.Metadata{Role: "snapshot", Version: 1, Length: 1, SHA256: tlog.SHA256Hex(nil)})
	if !errors.Is(err, tlog.ErrEd25519phUnsupported) {
		t.Fatalf("want ErrEd25519phUnsupported, got %v", err)
	}
}
