package tlog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
)

// TestRealRekorAcceptsBothKeyTypes submits statements signed by an Ed25519 and an ECDSA
// P-256 online key to a real Rekor v2 server and verifies the entries it returns: the
// inclusion proof and the checkpoint signed by the log's key.
func TestRealRekorAcceptsBothKeyTypes(t *testing.T) {
	r := rekortest.Start(t)
	checkLog(t, r.URL, tlog.LogKey{Key: r.PublicKey, Origin: r.Origin}, r.Log)
}

// TestFakeRekorEntriesVerify runs the same checks against the in-process log (make test).
func TestFakeRekorEntriesVerify(t *testing.T) {
	f := rekortest.NewFake(t)
	checkLog(t, f.URL, tlog.LogKey{Key: f.PublicKey, Origin: f.Origin}, func() string { return "" })
}

func checkLog(t *testing.T, url string, logKey tlog.LogKey, serverLog func() string) {
	c := &tlog.Client{URL: url}
	for _, kt := range []tufrepo.KeyType{tufrepo.KeyEd25519, tufrepo.KeyECDSAP256} {
		t.Run(string(kt), func(t *testing.T) {
			s := onlineSigner(t, kt)
			m := tlog.Metadata{Role: "snapshot", Version: 7, Length: 1234, SHA256: tlog.SHA256Hex([]byte("snapshot bytes " + kt))}
			signed, err := tlog.Sign(context.Background(), s, m)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			re, err := c.Submit(ctx, signed.Request)
			if err != nil {
				t.Fatalf("submit: %v\n%s", err, serverLog())
			}
			m.KeyID = s.KeyID
			e := api.TransparencyLogEntry{Role: m.Role, Version: m.Version, Length: m.Length, SHA256: m.SHA256, KeyID: s.KeyID, Envelope: signed.Envelope, Rekor: *re}
			if err := tlog.VerifyEntry(e, m, s.Key, logKey); err != nil {
				t.Fatalf("the real log's entry does not verify: %v", err)
			}

			// The same entry is refused for other bytes, another key, another log key.
			other := m
			other.SHA256 = tlog.SHA256Hex([]byte("other bytes"))
			if err := tlog.VerifyEntry(e, other, s.Key, logKey); err == nil || !strings.Contains(err.Error(), "sha256") {
				t.Errorf("entry verified for other bytes: %v", err)
			}
			if err := tlog.VerifyEntry(e, m, onlineSigner(t, kt).Key, logKey); err == nil {
				t.Error("entry verified with another key")
			}
			wrongPub, _, _ := ed25519.GenerateKey(rand.Reader)
			if err := tlog.VerifyEntry(e, m, s.Key, tlog.LogKey{Key: wrongPub, Origin: logKey.Origin}); err == nil || !strings.Contains(err.Error(), "checkpoint") {
				t.Errorf("entry verified with another log key: %v", err)
			}
			tampered := e
			tampered.Rekor.InclusionProof.RootHash = append([]byte(nil), e.Rekor.InclusionProof.RootHash...)
			tampered.Rekor.InclusionProof.RootHash[0] ^= 1
			if err := tlog.VerifyEntry(tampered, m, s.Key, logKey); err == nil {
				t.Error("entry verified with a tampered root hash")
			}
		})
	}
}

// TestRealRekorRefusesPureEd25519 documents why the statement is signed with Ed25519ph:
// Rekor v2 verifies Ed25519 keys only as Ed25519ph.
func TestRealRekorRefusesPureEd25519(t *testing.T) {
	r := rekortest.Start(t)
	s := onlineSigner(t, tufrepo.KeyEd25519)
	signed, err := tlog.Sign(context.Background(), s, tlog.Metadata{Role: "timestamp", Version: 1, Length: 10, SHA256: tlog.SHA256Hex(nil)})
	if err != nil {
		t.Fatal(err)
	}
	req := signed.Request
	req.HashedRekord.Digest = tlog.PAE(tlog.PayloadType, signed.Envelope.Payload)
	req.HashedRekord.Signature.Verifier.KeyDetails = "PKIX_ED25519"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// rekor-tiles v2.3.0 answers 500 (not 400) for it.
	if _, err := (&tlog.Client{URL: r.URL}).Submit(ctx, req); err == nil {
		t.Fatal("Rekor v2 accepted a pure Ed25519 hashedrekord")
	} else if _, ok := err.(*tlog.Error); !ok {
		t.Fatalf("want a refusal by the log, got %v", err)
	}
}
