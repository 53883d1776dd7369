package tufrepo

// Shared helpers for the tufrepo unit tests: keys, signed project roles, a small
// repository built by the real ceremony, and go-tuf checks. Time is always injected.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// t0 is the fixed "now" of the tests. It has no sub-second part; tests that need one add it.
var t0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

// newTestSigner generates a key of type kt and wraps it as an OnlineSigner.
func newTestSigner(tb testing.TB, kt KeyType) *OnlineSigner {
	tb.Helper()
	priv, err := GenerateKey(kt)
	if err != nil {
		tb.Fatalf("GenerateKey(%s): %v", kt, err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		tb.Fatalf("NewSigner(%s): %v", kt, err)
	}
	o, err := NewOnlineSigner(context.Background(), s)
	if err != nil {
		tb.Fatalf("NewOnlineSigner(%s): %v", kt, err)
	}
	return o
}

func newTestSigners(tb testing.TB, n int, kt KeyType) []*OnlineSigner {
	out := make([]*OnlineSigner, n)
	for i := range out {
		out[i] = newTestSigner(tb, kt)
	}
	return out
}

// delegationFor builds a project delegation to signers with threshold t.
func delegationFor(name string, t int, signers ...*OnlineSigner) ProjectDelegation {
	d := ProjectDelegation{Name: name, Keys: map[string]*metadata.Key{}, Threshold: t}
	for _, s := range signers {
		d.Keys[s.KeyID] = s.Key
		d.KeyIDs = append(d.KeyIDs, s.KeyID)
	}
	return d
}

// sha256Hex returns the lowercase hex SHA-256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// targetFile builds a target entry with one sha256 hash of content.
func targetFile(content []byte) *metadata.TargetFiles {
	tf := metadata.TargetFile()
	tf.Length = int64(len(content))
	s := sha256.Sum256(content)
	tf.Hashes = metadata.Hashes{"sha256": s[:]}
	return tf
}

// newProjectRole builds an unsigned project role as the CLI writes it.
func newProjectRole(version int64, expires time.Time, targets map[string]*metadata.TargetFiles) *metadata.Metadata[metadata.TargetsType] {
	md := metadata.Targets(expires)
	md.Signed.SpecVersion = SpecVersion
	md.Signed.Version = version
	if targets == nil {
		targets = map[string]*metadata.TargetFiles{}
	}
	md.Signed.Targets = targets
	return md
}

// signRole canonicalises md.Signed and signs it with each signer, as a maintainer does.
func signRole[T metadata.Roles](tb testing.TB, md *metadata.Metadata[T], signers ...*OnlineSigner) []byte {
	tb.Helper()
	signed, err := Canonical(md.Signed)
	if err != nil {
		tb.Fatalf("canonical: %v", err)
	}
	raw, err := SignEnvelope(context.Background(), signed, signers...)
	if err != nil {
		tb.Fatalf("SignEnvelope: %v", err)
	}
	return raw
}

// sigsOf returns the signatures of a metadata file.
func sigsOf(tb testing.TB, raw []byte) []metadata.Signature {
	tb.Helper()
	var env struct {
		Signatures []metadata.Signature `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		tb.Fatalf("parsing signatures: %v", err)
	}
	return env.Signatures
}

// mustSigned returns the canonical bytes of the "signed" value of a metadata file: what its
// signatures are over (the file itself escapes control characters).
func mustSigned(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	s, err := signedOf(raw)
	if err != nil {
		tb.Fatalf("signedOf: %v", err)
	}
	return reCanonical(tb, s)
}

// resign replaces the signatures of a metadata file with ones made by signers.
func resign(tb testing.TB, raw []byte, signers ...*OnlineSigner) []byte {
	tb.Helper()
	out, err := SignEnvelope(context.Background(), mustSigned(tb, raw), signers...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// testRepo is a repository built by the real ceremony and InitialOnline, with a mix of
// ed25519 and ECDSA P-256 keys in every role.
type testRepo struct {
	Root, Targets, Claimed []*OnlineSigner
	Online                 Signers
	Off                    *OfflineMetadata
	RC, Snap, TS           MetadataVersion
	Now                    time.Time
}

func newTestRepo(tb testing.TB, now time.Time) *testRepo {
	tb.Helper()
	r := &testRepo{
		Root:    []*OnlineSigner{newTestSigner(tb, KeyEd25519), newTestSigner(tb, KeyECDSAP256), newTestSigner(tb, KeyEd25519)},
		Targets: []*OnlineSigner{newTestSigner(tb, KeyECDSAP256), newTestSigner(tb, KeyEd25519)},
		Claimed: []*OnlineSigner{newTestSigner(tb, KeyEd25519), newTestSigner(tb, KeyECDSAP256)},
		Online: Signers{
			Timestamp:       newTestSigner(tb, KeyEd25519),
			Snapshot:        newTestSigner(tb, KeyECDSAP256),
			RecentlyClaimed: newTestSigner(tb, KeyECDSAP256),
		},
		Now: now,
	}
	off, err := Ceremony(context.Background(), CeremonyConfig{
		RootSigners: r.Root, RootThreshold: 2,
		TargetsSigners: r.Targets, TargetsThreshold: 1,
		ClaimedSigners: r.Claimed, ClaimedThreshold: 2,
		Timestamp: r.Online.Timestamp.Key, Snapshot: r.Online.Snapshot.Key, RecentlyClaimed: r.Online.RecentlyClaimed.Key,
		Now: now,
	})
	if err != nil {
		tb.Fatalf("Ceremony: %v", err)
	}
	r.Off = off
	r.RC, r.Snap, r.TS, err = InitialOnline(context.Background(), off, r.Online, now)
	if err != nil {
		tb.Fatalf("InitialOnline: %v", err)
	}
	return r
}

// wantCode checks that err carries the api code want and mentions every substring.
func wantCode(tb testing.TB, err error, want api.Code, substrings ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %s", want)
	}
	if got := api.CodeOf(err); got != want {
		tb.Fatalf("error code %s, want %s (error: %v)", got, want, err)
	}
	wantContains(tb, err, substrings...)
}

// wantContains checks that err is non-nil and its message contains every substring.
func wantContains(tb testing.TB, err error, substrings ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want one mentioning %q", substrings)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			tb.Errorf("error %q does not mention %q", err, s)
		}
	}
}

var errInjected = errors.New("injected failure")

// buildDelegator builds a node of recently-claimed that delegates to projects directly.
func buildDelegator(version int64, expires time.Time, projects []ProjectDelegation) ([]byte, error) {
	return BuildShardNode(version, expires, ShardKeys{}, ShardNode{Tree: RoleRecentlyClaimed, Projects: projects})
}
