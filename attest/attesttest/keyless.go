package attesttest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Keyless is an in-process stand-in for Fulcio and Rekor behind sigstore-go's own signing
// interfaces (sign.Keypair, sign.CertificateProvider, sign.Transparency), so code that
// signs with sigstore-go's pkg/sign runs unchanged against the VirtualSigstore.
//
// VirtualSigstore keeps its CA key to itself and certifies only keys it makes, so the
// keypair comes from the CA (NewKeypair) and the CA hands out that key's certificate, for
// the identity given here, after checking that the token's (unverified) email claim names
// it, as Fulcio binds the certificate to the token's identity.
type Keyless struct {
	s        *Sigstore
	identity string
	issuer   string

	mu       sync.Mutex
	certs    map[string]*x509.Certificate // by public key PEM
	Requests int                          // certificates issued
	Entries  int                          // log entries made
}

// Keyless returns the fake services for identity (an email SAN) vouched for by issuer.
func (s *Sigstore) Keyless(identity, issuer string) *Keyless {
	return &Keyless{s: s, identity: identity, issuer: issuer, certs: map[string]*x509.Certificate{}}
}

// NewKeypair makes a key the CA certifies for the identity.
func (k *Keyless) NewKeypair() (sign.Keypair, error) {
	cert, priv, err := k.s.VS.GenerateLeafCert(k.identity, k.issuer)
	if err != nil {
		return nil, err
	}
	key, ok := priv.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the virtual CA made a %T key; want ECDSA", priv)
	}
	kp := &keypair{key: key}
	pemText, err := kp.GetPublicKeyPem()
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.certs[pemText] = cert
	k.mu.Unlock()
	return kp, nil
}

// GetCertificate is the CA: the certificate of a key NewKeypair made, if the token names
// the identity.
func (k *Keyless) GetCertificate(_ context.Context, kp sign.Keypair, o *sign.CertificateProviderOptions) ([]byte, error) {
	if o == nil || o.IDToken == "" {
		return nil, errors.New("fake Fulcio: no identity token")
	}
	parts := strings.Split(o.IDToken, ".")
	if len(parts) != 3 {
		return nil, errors.New("fake Fulcio: the token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("fake Fulcio: %w", err)
	}
	var claims struct {
		Email string `json:"email"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("fake Fulcio: %w", err)
	}
	if claims.Email != k.identity {
		return nil, fmt.Errorf("fake Fulcio: the token is for %q, this CA certifies %q", claims.Email, k.identity)
	}
	pemText, err := kp.GetPublicKeyPem()
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	cert, ok := k.certs[pemText]
	if !ok {
		return nil, errors.New("fake Fulcio: the key was not made by NewKeypair")
	}
	k.Requests++
	return cert.Raw, nil
}

// GetTransparencyLogEntry is the log: a dsse entry for the bundle's envelope, integrated
// now, with an inclusion proof and a signed entry timestamp.
func (k *Keyless) GetTransparencyLogEntry(_ context.Context, certPEM []byte, b *protobundle.Bundle) error {
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(certPEM)
	if err != nil || len(certs) != 1 {
		return fmt.Errorf("fake Rekor: want one certificate: %v", err)
	}
	pe := b.GetDsseEnvelope()
	if pe == nil || len(pe.Signatures) != 1 {
		return errors.New("fake Rekor: want a DSSE envelope with one signature")
	}
	env := &dsse.Envelope{PayloadType: pe.PayloadType, Payload: base64.StdEncoding.EncodeToString(pe.Payload),
		Signatures: []dsse.Signature{{KeyID: pe.Signatures[0].Keyid, Sig: base64.StdEncoding.EncodeToString(pe.Signatures[0].Sig)}}}
	// The certificate is valid from when NewKeypair made it for ten minutes.
	at := time.Now().Add(time.Second)
	e, err := k.s.VS.GenerateTlogEntry(certs[0], env, pe.Signatures[0].Sig, at.Unix(), true)
	if err != nil {
		return fmt.Errorf("fake Rekor: %w", err)
	}
	tle, err := k.s.logEntry(e)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.Entries++
	k.mu.Unlock()
	b.VerificationMaterial.TlogEntries = append(b.VerificationMaterial.TlogEntries, tle)
	return nil
}

// logEntry is the protobuf-specs form of a VirtualSigstore entry, with its promise.
func (s *Sigstore) logEntry(e *tlog.Entry) (*protorekor.TransparencyLogEntry, error) {
	logID, err := s.VS.RekorLogID()
	if err != nil {
		return nil, err
	}
	tle := e.TransparencyLogEntry()
	tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
	set, err := s.VS.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime,
		LogIndex:       tle.LogIndex,
		LogID:          logID,
	})
	if err != nil {
		return nil, err
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	return tle, nil
}

// keypair is an ECDSA P-256 sign.Keypair, as sigstore-go's EphemeralKeypair, over a key
// the virtual CA made.
type keypair struct{ key *ecdsa.PrivateKey }

func (p *keypair) GetHashAlgorithm() protocommon.HashAlgorithm {
	return protocommon.HashAlgorithm_SHA2_256
}
func (p *keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
}
func (p *keypair) GetHint() []byte                { return nil }
func (p *keypair) GetKeyAlgorithm() string        { return "ECDSA" }
func (p *keypair) GetPublicKey() crypto.PublicKey { return p.key.Public() }
func (p *keypair) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(p.key.Public())
	return string(b), err
}
func (p *keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	sum := sha256.Sum256(data)
	sig, err := p.key.Sign(rand.Reader, sum[:], crypto.SHA256)
	return sig, sum[:], err
}

// IDToken returns an unsigned JWT-shaped token whose claims name email at issuer, valid
// until exp: enough for code that reads claims before sending the token to Fulcio (and for
// the fake CA above); a real Fulcio would refuse it.
func IDToken(email, issuer string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"iss": issuer, "sub": email, "email": email, "aud": "sigstore", "exp": exp.Unix()})
	return enc([]byte(`{"alg":"none"}`)) + "." + enc(claims) + "." + enc([]byte("unsigned"))
}
