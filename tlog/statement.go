// Package tlog submits every metadata version Cairn signs with an online key to a Rekor v2
// transparency log, and verifies the entries.
//
// What goes into the log: an in-toto statement whose subject is the metadata file
// ("<version>.<role>.json", sha256 of its exact bytes) and whose predicate names the role,
// version and length, wrapped in a DSSE envelope signed by the same online key that signed
// that metadata version. Rekor v2 (rekor-tiles v2.3.0) accepts only hashedrekord entries,
// so the entry is a hashedrekord over the envelope's pre-authentication encoding (PAE) with
// the envelope's signature, as rekor-tiles' CLIENTS.md prescribes for DSSE:
//
//   - ECDSA P-256: ECDSA over SHA-256(PAE), key details PKIX_ECDSA_P256_SHA_256;
//   - Ed25519: Ed25519ph over SHA-512(PAE), key details PKIX_ED25519_PH (Rekor v2 verifies
//     Ed25519 keys only as Ed25519ph; a pure Ed25519 signature cannot be logged).
//
// The PAE starts with "DSSEv1 ", so no envelope signature is ever a valid signature over
// TUF metadata (canonical JSON), and Ed25519ph is domain-separated from pure Ed25519.
//
// The package has no HTTP server and no SQL: the worker consumes a Store interface that
// package store implements, and package server wires it.
package tlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

const (
	// PayloadType is the DSSE payload type of the statement.
	PayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto statement type.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType names Cairn's predicate: a TUF metadata version signed by an online key.
	PredicateType = "https://cairn.dev/tuf-metadata-signed/v1"
)

// Statement is the in-toto statement logged for one metadata version.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject names the metadata file by its consistent-snapshot name and digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate says which role version the file is and which key signed it.
type Predicate struct {
	Role    string `json:"role"`
	Version int64  `json:"version"`
	Length  int64  `json:"length"`
	KeyID   string `json:"keyid"`
}

// Metadata identifies one signed metadata version: what a statement names.
type Metadata struct {
	Role    string
	Version int64
	Length  int64
	SHA256  string // hex, of the exact file bytes
	KeyID   string // the online key that signed it
}

// NewStatement builds the statement for m. Its JSON encoding is deterministic.
func NewStatement(m Metadata) Statement {
	return Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: strconv.FormatInt(m.Version, 10) + "." + m.Role + ".json", Digest: map[string]string{"sha256": m.SHA256}}},
		PredicateType: PredicateType,
		Predicate:     Predicate{Role: m.Role, Version: m.Version, Length: m.Length, KeyID: m.KeyID},
	}
}

// PAE is the DSSE pre-authentication encoding of a payload.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "DSSEv1 %d %s %d ", len(payloadType), payloadType, len(payload))
	b.Write(payload)
	return b.Bytes()
}

// ErrEd25519phUnsupported is returned for an Ed25519 signer that cannot make Ed25519ph
// signatures, which Rekor v2 needs for Ed25519 keys.
var ErrEd25519phUnsupported = errors.New("this Ed25519 signer cannot make Ed25519ph signatures, which Rekor v2 requires for Ed25519 keys: use an ECDSA P-256 online key, or a signer whose crypto.Signer honours ed25519.Options{Hash: crypto.SHA512}")

// Signed is a signed statement ready to be logged.
type Signed struct {
	Envelope api.DSSEEnvelope
	// Request is the Rekor v2 create-entry request body.
	Request HashedRekordRequest
}

// Sign builds the statement for m, and signs its envelope with s (which must be the key
// that signed the metadata).
func Sign(ctx context.Context, s *tufrepo.OnlineSigner, m Metadata) (*Signed, error) {
	m.KeyID = s.KeyID
	payload, err := json.Marshal(NewStatement(m))
	if err != nil {
		return nil, fmt.Errorf("encoding statement: %w", err)
	}
	pae := PAE(PayloadType, payload)
	pub, err := s.Signer.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading public key of %s: %w", s.KeyID, err)
	}
	var sig, digest []byte
	var details string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("only ECDSA P-256 keys are supported")
		}
		sum := sha256.Sum256(pae)
		digest, details = sum[:], KeyDetailsECDSAP256
		sig, err = s.Signer.SignMessage(bytes.NewReader(pae), options.WithContext(ctx), options.WithDigest(digest), options.WithCryptoSignerOpts(crypto.SHA256))
		if err != nil {
			return nil, fmt.Errorf("signing the log statement with key %s: %w", s.KeyID, err)
		}
	case ed25519.PublicKey:
		sum := sha512.Sum512(pae)
		digest, details = sum[:], KeyDetailsEd25519ph
		sig, err = signEd25519ph(ctx, s.Signer, digest)
		if err != nil {
			return nil, fmt.Errorf("signing the log statement with key %s: %w", s.KeyID, err)
		}
		if ed25519.VerifyWithOptions(k, digest, sig, &ed25519.Options{Hash: crypto.SHA512}) != nil {
			return nil, fmt.Errorf("key %s: %w", s.KeyID, ErrEd25519phUnsupported)
		}
	default:
		return nil, fmt.Errorf("key %s: unsupported key type %T", s.KeyID, pub)
	}
	der, err := marshalPKIX(pub)
	if err != nil {
		return nil, err
	}
	env := api.DSSEEnvelope{PayloadType: PayloadType, Payload: payload, Signatures: []api.DSSESignature{{KeyID: s.KeyID, Sig: sig}}}
	return &Signed{Envelope: env, Request: newRequest(digest, sig, der, details)}, nil
}

// signEd25519ph signs a SHA-512 prehash with an Ed25519 key through the crypto.Signer
// interface (ed25519.PrivateKey and tufrepo's file signer honour ed25519.Options; sigstore
// KMS signers expose one through CryptoSigner).
func signEd25519ph(ctx context.Context, s signature.Signer, digest []byte) ([]byte, error) {
	var cs crypto.Signer
	switch v := s.(type) {
	case interface {
		CryptoSigner(context.Context, func(error)) (crypto.Signer, crypto.SignerOpts, error)
	}:
		c, _, err := v.CryptoSigner(ctx, func(error) {})
		if err != nil {
			return nil, err
		}
		cs = c
	case crypto.Signer:
		cs = v
	default:
		return nil, ErrEd25519phUnsupported
	}
	return cs.Sign(rand.Reader, digest, &ed25519.Options{Hash: crypto.SHA512})
}

// VerifySignature checks the envelope's signature by keyid with key (a TUF key) over the
// PAE of its payload, with the scheme Sign uses for that key type.
func VerifySignature(env api.DSSEEnvelope, key *metadata.Key) error {
	pub, sig, err := signatureBy(env, key)
	if err != nil {
		return err
	}
	return verifyPAE(pub, PAE(env.PayloadType, env.Payload), sig)
}

// signatureBy returns key's public key and its signature in env.
func signatureBy(env api.DSSEEnvelope, key *metadata.Key) (crypto.PublicKey, []byte, error) {
	pub, err := key.ToPublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("reading public key: %w", err)
	}
	id, err := key.ID()
	if err != nil {
		return nil, nil, err
	}
	for _, s := range env.Signatures {
		if s.KeyID == id {
			return pub, s.Sig, nil
		}
	}
	return nil, nil, fmt.Errorf("the envelope has no signature by key %s", id)
}

func verifyPAE(pub crypto.PublicKey, pae, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(pae)
		if !ecdsa.VerifyASN1(k, sum[:], sig) {
			return errors.New("ECDSA signature over the envelope does not verify")
		}
	case ed25519.PublicKey:
		sum := sha512.Sum512(pae)
		if err := ed25519.VerifyWithOptions(k, sum[:], sig, &ed25519.Options{Hash: crypto.SHA512}); err != nil {
			return fmt.Errorf("Ed25519ph signature over the envelope does not verify: %w", err)
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// ParseStatement decodes the envelope's statement and checks its types.
func ParseStatement(env api.DSSEEnvelope) (*Statement, error) {
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("payload type %q, want %q", env.PayloadType, PayloadType)
	}
	// The statement is logged and read by other tools too: it must have one reading.
	if err := strictjson.Check(env.Payload, strictjson.FieldsOf(Statement{})); err != nil {
		return nil, fmt.Errorf("decoding statement: %w", err)
	}
	var st Statement
	if err := json.Unmarshal(env.Payload, &st); err != nil {
		return nil, fmt.Errorf("decoding statement: %w", err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return nil, fmt.Errorf("statement type %q / predicate %q is not Cairn's", st.Type, st.PredicateType)
	}
	if len(st.Subject) != 1 {
		return nil, fmt.Errorf("statement has %d subjects, want 1", len(st.Subject))
	}
	return &st, nil
}

// CheckStatement checks that st names exactly m (role, version, length, sha256, file name).
func CheckStatement(st *Statement, m Metadata) error {
	want := NewStatement(m)
	p := st.Predicate
	if p.Role != m.Role || p.Version != m.Version {
		return fmt.Errorf("the statement is about %s version %d, not %s version %d", p.Role, p.Version, m.Role, m.Version)
	}
	if got := st.Subject[0].Digest["sha256"]; got != m.SHA256 {
		return fmt.Errorf("the logged sha256 of %s version %d is %s, the metadata's is %s", m.Role, m.Version, got, m.SHA256)
	}
	if p.Length != m.Length {
		return fmt.Errorf("the logged length of %s version %d is %d, the metadata's is %d", m.Role, m.Version, p.Length, m.Length)
	}
	if st.Subject[0].Name != want.Subject[0].Name {
		return fmt.Errorf("the statement's subject is %q, want %q", st.Subject[0].Name, want.Subject[0].Name)
	}
	return nil
}

// SHA256Hex is the hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
