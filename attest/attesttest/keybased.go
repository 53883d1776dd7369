package attesttest

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/attest"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/pki"
	"github.com/sigstore/rekor/pkg/types"
	dsseentry "github.com/sigstore/rekor/pkg/types/dsse"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
)

// KeyLog is the VirtualSigstore's log behind sigstore-go's sign.Transparency for bundles
// signed with a key rather than a certificate: a Rekor v1 dsse entry that names the public
// key, integrated now, with a signed entry timestamp and (unless NoInclusionProof) an
// inclusion proof. Rekor's own entry types build the entry, as VirtualSigstore does for
// certificates. Rekor v1's dsse type checks pure Ed25519 signatures only, so key-based
// bundles made here use ECDSA P-256 keys; Ed25519ph keys are tested against Rekor v2.
type KeyLog struct {
	s                *Sigstore
	NoInclusionProof bool

	mu      sync.Mutex
	Entries int
}

// KeyLog returns the log for key-based bundles.
func (s *Sigstore) KeyLog() *KeyLog { return &KeyLog{s: s} }

// GetTransparencyLogEntry logs the bundle's envelope under keyPEM.
func (l *KeyLog) GetTransparencyLogEntry(ctx context.Context, keyPEM []byte, b *protobundle.Bundle) error {
	pe := b.GetDsseEnvelope()
	if pe == nil || len(pe.Signatures) != 1 {
		return errors.New("fake Rekor: want a DSSE envelope with one signature")
	}
	env := &dsse.Envelope{PayloadType: pe.PayloadType, Payload: base64.StdEncoding.EncodeToString(pe.Payload),
		Signatures: []dsse.Signature{{KeyID: pe.Signatures[0].Keyid, Sig: base64.StdEncoding.EncodeToString(pe.Signatures[0].Sig)}}}
	envBytes, err := json.Marshal(env)
	if err != nil {
		return err
	}
	proposed, err := types.NewProposedEntry(ctx, dsseentry.KIND, dsseentry.New().DefaultVersion(), types.ArtifactProperties{
		ArtifactBytes: envBytes, SignatureBytes: pe.Signatures[0].Sig, PublicKeyBytes: [][]byte{keyPEM}, PKIFormat: string(pki.X509),
	})
	if err != nil {
		return fmt.Errorf("fake Rekor: %w", err)
	}
	impl, err := types.CreateVersionedEntry(proposed)
	if err != nil {
		return fmt.Errorf("fake Rekor: %w", err)
	}
	body, err := types.CanonicalizeEntry(ctx, impl)
	if err != nil {
		return fmt.Errorf("fake Rekor: %w", err)
	}
	var proof *models.InclusionProof
	if !l.NoInclusionProof {
		if proof, err = l.s.VS.GetInclusionProof(body); err != nil {
			return fmt.Errorf("fake Rekor: %w", err)
		}
	}
	logID, err := l.s.VS.RekorLogID()
	if err != nil {
		return err
	}
	rawID, err := hex.DecodeString(logID)
	if err != nil {
		return err
	}
	e, err := tlog.NewEntry(body, time.Now().Unix(), 0, rawID, nil, proof) //nolint:staticcheck // as VirtualSigstore builds entries
	if err != nil {
		return fmt.Errorf("fake Rekor: %w", err)
	}
	tle, err := l.s.logEntry(e)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.Entries++
	l.mu.Unlock()
	b.VerificationMaterial.TlogEntries = append(b.VerificationMaterial.TlogEntries, tle)
	return nil
}

// KeyBundle signs a statement about subjects with key (a maintainer key whose TUF key ID
// is keyID), logs it in the KeyLog, and returns the v0.3 bundle JSON. It is not verified
// here, so tests can make bundles the server must refuse. Options honoured: PredicateType,
// Predicate, NoInclusionProof.
func (s *Sigstore) KeyBundle(t testing.TB, key crypto.Signer, keyID string, o Options, subjects ...Subject) []byte {
	t.Helper()
	if o.PredicateType == "" {
		o.PredicateType = SLSAProvenance
	}
	kp, err := attest.NewKeypair(key, keyID)
	if err != nil {
		t.Fatal(err)
	}
	log := s.KeyLog()
	log.NoInclusionProof = o.NoInclusionProof
	pb, err := sign.Bundle(&sign.DSSEData{Data: Statement(t, o.PredicateType, o.Predicate, subjects...), PayloadType: "application/vnd.in-toto+json"}, kp,
		sign.BundleOptions{TransparencyLogs: []sign.Transparency{log}, Context: context.Background()})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
