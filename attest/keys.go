package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256" // also the digests keys sign
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cairn-dev/cairn/api"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Key-based attestations: a bundle whose verification material is a public-key hint, signed
// with one of a project's maintainer keys (the keys its TUF delegation lists), and logged in
// the transparency log like a keyless one. The identity recorded for it is made of names
// no Fulcio certificate carries (Verify refuses a certificate that does), so a policy's
// trusted identity cannot confuse the two:
//
//	SAN    tuf-key:<TUF key ID>
//	issuer cairn-maintainer:<project>
const (
	KeySANPrefix           = "tuf-key:"
	MaintainerIssuerPrefix = "cairn-maintainer:"
)

// MaintainerKey is one key a project's maintainers sign with, from a delegation the caller
// trusts: the server's published delegation, or the client's TUF-verified one.
type MaintainerKey struct {
	Project string
	KeyID   string // TUF key ID; the bundle's public-key hint
	Public  crypto.PublicKey

	identity *api.SignerIdentity // set for a local key (VerifyWithLocalKey)
}

// LocalKeyIssuer is the issuer of an attestation verified with a key the user gave
// (VerifyWithLocalKey); its SAN is "key:sha256:<hex of the key's DER SubjectPublicKeyInfo>".
const LocalKeyIssuer = "local-key"

// LocalKeyIdentity names an attestation signed with the key whose fingerprint is fp.
func LocalKeyIdentity(fp string) api.SignerIdentity {
	return api.SignerIdentity{SAN: "key:sha256:" + fp, Issuer: LocalKeyIssuer}
}

// KeyFingerprint is the hex sha256 of pub's DER SubjectPublicKeyInfo.
func KeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// MaintainerKeys are maintainer keys by TUF key ID.
type MaintainerKeys map[string]MaintainerKey

// MaintainerIdentity is the identity of an attestation signed with maintainer key keyID of
// project.
func MaintainerIdentity(project, keyID string) api.SignerIdentity {
	return api.SignerIdentity{SAN: KeySANPrefix + keyID, Issuer: MaintainerIssuerPrefix + project}
}

// IsMaintainerIdentity reports whether id uses the names of a maintainer-key identity.
func IsMaintainerIdentity(id api.SignerIdentity) bool {
	return strings.HasPrefix(id.SAN, KeySANPrefix) || strings.HasPrefix(id.Issuer, MaintainerIssuerPrefix)
}

// verifier checks DSSE signatures made with the key. Ed25519 keys sign as Ed25519ph: Rekor
// v2's entries (hashedrekord) take only pre-hashed signatures, and the Ed25519ph domain
// separation keeps these signatures apart from the key's pure-Ed25519 TUF signatures.
// ECDSA P-256 signs SHA-256 digests, as for TUF; a DSSE pre-authentication encoding
// ("DSSEv1 …") is never canonical JSON, so neither kind of signature can pass for a TUF
// metadata signature.
func (k MaintainerKey) verifier() (signature.Verifier, error) {
	switch pub := k.Public.(type) {
	case ed25519.PublicKey:
		return signature.LoadED25519phVerifier(pub)
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported: use P-256", pub.Curve.Params().Name)
		}
		return signature.LoadECDSAVerifier(pub, crypto.SHA256)
	default:
		return nil, fmt.Errorf("key type %T is not supported for attestations: use ed25519 or ecdsa-p256", k.Public)
	}
}

// Keypair is a maintainer key as sigstore-go's sign.Keypair, for 'cairn attest --key':
// signer is the key's private half (the CLI key store's signer), keyID its TUF key ID,
// which becomes the bundle's public-key hint. It signs as verifier checks: Ed25519ph over
// a SHA-512 digest, or ECDSA P-256 over a SHA-256 digest.
type Keypair struct {
	signer crypto.Signer
	keyID  string
	alg    protocommon.PublicKeyDetails
	hash   crypto.Hash
}

// NewKeypair wraps signer, whose TUF key ID is keyID.
func NewKeypair(signer crypto.Signer, keyID string) (*Keypair, error) {
	kp := &Keypair{signer: signer, keyID: keyID}
	switch pub := signer.Public().(type) {
	case ed25519.PublicKey:
		kp.alg, kp.hash = protocommon.PublicKeyDetails_PKIX_ED25519_PH, crypto.SHA512
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported: use P-256", pub.Curve.Params().Name)
		}
		kp.alg, kp.hash = protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, crypto.SHA256
	default:
		return nil, fmt.Errorf("key type %T is not supported for attestations: use ed25519 or ecdsa-p256", pub)
	}
	return kp, nil
}

// GetHashAlgorithm is the digest the key signs.
func (k *Keypair) GetHashAlgorithm() protocommon.HashAlgorithm {
	if k.hash == crypto.SHA512 {
		return protocommon.HashAlgorithm_SHA2_512
	}
	return protocommon.HashAlgorithm_SHA2_256
}

// GetSigningAlgorithm is Ed25519ph or ECDSA P-256 with SHA-256.
func (k *Keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails { return k.alg }

// GetHint is the TUF key ID: verifiers look the key up by it in the delegation.
func (k *Keypair) GetHint() []byte { return []byte(k.keyID) }

// GetKeyAlgorithm names the key type as sigstore-go does.
func (k *Keypair) GetKeyAlgorithm() string {
	if k.alg == protocommon.PublicKeyDetails_PKIX_ED25519_PH {
		return "ED25519"
	}
	return "ECDSA"
}

// GetPublicKey is the public key.
func (k *Keypair) GetPublicKey() crypto.PublicKey { return k.signer.Public() }

// GetPublicKeyPem is the public key as PEM (PKIX), which the log records.
func (k *Keypair) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.signer.Public())
	return string(b), err
}

// SignData signs the digest of data and returns the signature and the digest.
func (k *Keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	h := k.hash.New()
	h.Write(data)
	digest := h.Sum(nil)
	var opts crypto.SignerOpts = k.hash
	if k.alg == protocommon.PublicKeyDetails_PKIX_ED25519_PH {
		opts = &ed25519.Options{Hash: crypto.SHA512}
	}
	sig, err := k.signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("signing with key %s: %w", k.keyID, err)
	}
	return sig, digest, nil
}
