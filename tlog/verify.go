package tlog

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// LogKey is what verifies a log's checkpoints: its public key and, optionally, the
// checkpoint origin (the log's --hostname). With no origin, the origin the checkpoint
// names is used; the key must still have signed it under that name.
type LogKey struct {
	Key    crypto.PublicKey
	Origin string
}

// Checkpoint is a verified checkpoint's body.
type Checkpoint struct {
	Origin   string
	TreeSize uint64
	RootHash []byte
}

// VerifyCheckpoint opens a signed note (C2SP tlog-checkpoint) with the log key.
func (k LogKey) VerifyCheckpoint(signed string) (*Checkpoint, error) {
	origin := k.Origin
	if origin == "" {
		origin, _, _ = strings.Cut(signed, "\n")
	}
	v, err := noteVerifier(origin, k.Key)
	if err != nil {
		return nil, err
	}
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("the checkpoint is not signed by the log key: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		return nil, errors.New("the checkpoint is malformed: want origin, size and root hash lines")
	}
	if lines[0] != origin {
		return nil, fmt.Errorf("the checkpoint's origin is %q, want %q", lines[0], origin)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint's tree size %q is not a number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		return nil, fmt.Errorf("the checkpoint's root hash %q is not a base64 SHA-256 hash", lines[2])
	}
	return &Checkpoint{Origin: lines[0], TreeSize: size, RootHash: root}, nil
}

// noteVerifier builds the note verifier of a Rekor v2 log key: Ed25519 as in the signed
// note spec; ECDSA as rekor-tiles signs it (key hash = first 4 bytes of SHA-256 of the
// PKIX key, ASN.1 ECDSA over SHA-256 of the note text).
func noteVerifier(origin string, pub crypto.PublicKey) (note.Verifier, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		vkey, err := note.NewEd25519VerifierKey(origin, k)
		if err != nil {
			return nil, fmt.Errorf("log key: %w", err)
		}
		return note.NewVerifier(vkey)
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("log key: %w", err)
		}
		h := sha256.Sum256(der)
		return ecdsaNoteVerifier{name: origin, hash: binary.BigEndian.Uint32(h[:4]), key: k}, nil
	default:
		return nil, fmt.Errorf("unsupported log key type %T", pub)
	}
}

type ecdsaNoteVerifier struct {
	name string
	hash uint32
	key  *ecdsa.PublicKey
}

func (v ecdsaNoteVerifier) Name() string    { return v.name }
func (v ecdsaNoteVerifier) KeyHash() uint32 { return v.hash }
func (v ecdsaNoteVerifier) Verify(msg, sig []byte) bool {
	h := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(v.key, h[:], sig)
}

// hashedRekordBody is the log entry (canonicalized_body) of a hashedrekord v0.0.2.
type hashedRekordBody struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		HashedRekordV002 *struct {
			Data struct {
				Algorithm string `json:"algorithm"`
				Digest    []byte `json:"digest"`
			} `json:"data"`
			Signature rekorSignature `json:"signature"`
		} `json:"hashedRekordV002"`
	} `json:"spec"`
}

// VerifyRekorEntry checks that the log entry is a hashedrekord of exactly this envelope's
// PAE and signature by key, that the inclusion proof puts it in the tree, and that the
// tree head is a checkpoint signed by the log key. With a nil log key the checkpoint's
// signature is not checked (the server stores what an unconfigured log returns; auditors
// always pass the key).
func VerifyRekorEntry(e api.RekorEntry, env api.DSSEEnvelope, key *metadata.Key, log *LogKey) error {
	pub, sig, err := signatureBy(env, key)
	if err != nil {
		return err
	}
	pae := PAE(env.PayloadType, env.Payload)
	var digest []byte
	var details, alg string
	switch pub.(type) {
	case *ecdsa.PublicKey:
		s := sha256.Sum256(pae)
		digest, details, alg = s[:], KeyDetailsECDSAP256, "SHA2_256"
	case ed25519.PublicKey:
		s := sha512.Sum512(pae)
		digest, details, alg = s[:], KeyDetailsEd25519ph, "SHA2_512"
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	der, err := marshalPKIX(pub)
	if err != nil {
		return err
	}

	var body hashedRekordBody
	if err := json.Unmarshal(e.CanonicalizedBody, &body); err != nil {
		return fmt.Errorf("decoding the log entry body: %w", err)
	}
	hr := body.Spec.HashedRekordV002
	if body.Kind != "hashedrekord" || body.APIVersion != "0.0.2" || hr == nil {
		return fmt.Errorf("the log entry is a %s %s, want hashedrekord 0.0.2", body.Kind, body.APIVersion)
	}
	switch {
	case !bytes.Equal(hr.Data.Digest, digest) || hr.Data.Algorithm != alg:
		return errors.New("the log entry's digest is not the digest of this envelope")
	case !bytes.Equal(hr.Signature.Content, sig):
		return errors.New("the log entry's signature is not this envelope's signature")
	case hr.Signature.Verifier.PublicKey == nil || !bytes.Equal(hr.Signature.Verifier.PublicKey.RawBytes, der):
		id, _ := key.ID()
		return fmt.Errorf("the log entry's public key is not key %s", id)
	case hr.Signature.Verifier.KeyDetails != details:
		return fmt.Errorf("the log entry's key details are %s, want %s", hr.Signature.Verifier.KeyDetails, details)
	}
	if err := verifyPAE(pub, pae, sig); err != nil {
		return err
	}

	p := e.InclusionProof
	if p.LogIndex < 0 || p.TreeSize <= p.LogIndex {
		return fmt.Errorf("the inclusion proof's index %d is outside its tree of size %d", p.LogIndex, p.TreeSize)
	}
	if p.LogIndex != e.LogIndex {
		return fmt.Errorf("the inclusion proof is for index %d, the entry is at %d", p.LogIndex, e.LogIndex)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(e.CanonicalizedBody)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.LogIndex), uint64(p.TreeSize), leaf, p.Hashes, p.RootHash); err != nil {
		return fmt.Errorf("the inclusion proof does not verify: %w", err)
	}
	if log == nil {
		return nil
	}
	cp, err := log.VerifyCheckpoint(p.Checkpoint)
	if err != nil {
		return err
	}
	if cp.TreeSize != uint64(p.TreeSize) || !bytes.Equal(cp.RootHash, p.RootHash) {
		return fmt.Errorf("the checkpoint (size %d) does not commit to the proof's tree (size %d)", cp.TreeSize, p.TreeSize)
	}
	return nil
}

// VerifyEntry checks a stored entry completely against what an auditor knows: the metadata
// version (role, version, length and sha256 of the served bytes), the key that the root in
// effect delegates the role to, and the log's key.
func VerifyEntry(e api.TransparencyLogEntry, m Metadata, key *metadata.Key, log LogKey) error {
	st, err := ParseStatement(e.Envelope)
	if err != nil {
		return err
	}
	if err := CheckStatement(st, m); err != nil {
		return err
	}
	if err := VerifySignature(e.Envelope, key); err != nil {
		return err
	}
	return VerifyRekorEntry(e.Rekor, e.Envelope, key, &log)
}
