package tufrepo

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestEnvelopeWithPEMKeysIsValidJSON: delegations to ECDSA keys carry PEM (newlines) in
// canonical JSON, which is not valid JSON as is; the served file must parse and verify.
func TestEnvelopeWithPEMKeysIsValidJSON(t *testing.T) {
	ctx := context.Background()
	priv, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSigner(priv)
	o, err := NewOnlineSigner(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := buildDelegator(1, time.Now().Add(time.Hour), []ProjectDelegation{{Name: "p", Keys: map[string]*metadata.Key{o.KeyID: o.Key}, KeyIDs: []string{o.KeyID}, Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if json.Valid(signed) {
		t.Fatal("expected canonical JSON with raw newlines (test premise)")
	}
	raw, err := SignEnvelope(ctx, signed, o)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) {
		t.Fatalf("envelope is not valid JSON: %s", raw)
	}
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	delegator := metadata.Targets()
	delegator.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{o.KeyID: o.Key}, Roles: []metadata.DelegatedRole{{Name: "x", KeyIDs: []string{o.KeyID}, Threshold: 1, Paths: []string{"*"}}}}
	if err := delegator.VerifyDelegate("x", md); err != nil {
		t.Fatalf("signature over the canonical bytes does not verify after parsing: %v", err)
	}
}

// TestEnvelopeKeepsWhitespaceBetweenTokens: signed bytes as a proposer sent them may be
// indented; only control characters inside strings are escaped.
func TestEnvelopeKeepsWhitespaceBetweenTokens(t *testing.T) {
	signed := []byte("{\n  \"a\": \"x\\\"\ny\",\n\t\"b\": [1,\r\n 2]\n}")
	raw := Envelope(signed, nil)
	if !json.Valid(raw) {
		t.Fatalf("not valid JSON: %q", raw)
	}
	var env struct {
		Signed struct {
			A string `json:"a"`
			B []int  `json:"b"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Signed.A != "x\"\ny" || len(env.Signed.B) != 2 {
		t.Fatalf("parsed %+v, %v", env.Signed, err)
	}
}
