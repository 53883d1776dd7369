package tufrepo

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// KeyType names the key algorithms Cairn creates and accepts: the two every mainstream TUF
// client verifies.
type KeyType string

const (
	KeyEd25519   KeyType = "ed25519"
	KeyECDSAP256 KeyType = "ecdsa-p256"
)

// GenerateKey creates a new private key of type t.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyEd25519, "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported key type %q: use %q or %q", t, KeyEd25519, KeyECDSAP256)
	}
}

// NewSigner wraps a private key as a signer that go-tuf's Sign accepts.
func NewSigner(priv crypto.Signer) (signature.Signer, error) {
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return newED25519Signer(k)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("only ECDSA P-256 keys are supported")
		}
		return signature.LoadECDSASigner(k, crypto.SHA256)
	default:
		return nil, fmt.Errorf("unsupported private key type %T", priv)
	}
}

// PublicKey converts a public key to TUF form, checking it is a supported type.
func PublicKey(pub crypto.PublicKey) (*metadata.Key, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("ed25519 public key has the wrong length")
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("only ECDSA P-256 keys are supported")
		}
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	return metadata.KeyFromPublicKey(pub)
}

// KeyFromAPI converts and validates a wire key. Only ed25519 and ECDSA P-256
// (keytype "ecdsa" or "ecdsa-sha2-nistp256", scheme "ecdsa-sha2-nistp256") are accepted.
func KeyFromAPI(k api.Key) (*metadata.Key, error) {
	mk := &metadata.Key{Type: k.KeyType, Scheme: k.Scheme, Value: metadata.KeyVal{PublicKey: k.KeyVal.Public}}
	switch {
	case k.KeyType == metadata.KeyTypeEd25519 && k.Scheme == metadata.KeySchemeEd25519:
		b, err := hex.DecodeString(k.KeyVal.Public)
		if err != nil || len(b) != ed25519.PublicKeySize || k.KeyVal.Public != strings.ToLower(k.KeyVal.Public) {
			// Lowercase only: the key ID hashes the hex text, so one key in two cases would
			// be two key IDs for one signer.
			return nil, api.Errorf(api.CodeInvalidKey, "ed25519 key must be %d bytes in lowercase hex", ed25519.PublicKeySize)
		}
	case (k.KeyType == metadata.KeyTypeECDSA_SHA2_P256 || k.KeyType == metadata.KeyTypeECDSA_SHA2_P256_COMPAT) &&
		k.Scheme == metadata.KeySchemeECDSA_SHA2_P256:
		pub, err := mk.ToPublicKey()
		if err != nil {
			return nil, api.Wrap(api.CodeInvalidKey, err, "ECDSA key is not a PEM-encoded P-256 public key")
		}
		if pub.(*ecdsa.PublicKey).Curve != elliptic.P256() {
			return nil, api.Errorf(api.CodeInvalidKey, "ECDSA key must be on curve P-256")
		}
	default:
		return nil, api.Errorf(api.CodeInvalidKey, "key type %q with scheme %q is not supported: use ed25519 or ecdsa-sha2-nistp256", k.KeyType, k.Scheme)
	}
	return mk, nil
}

// KeyToAPI converts a TUF key to its wire form.
func KeyToAPI(k *metadata.Key) api.Key {
	var out api.Key
	out.KeyType, out.Scheme, out.KeyVal.Public = k.Type, k.Scheme, k.Value.PublicKey
	return out
}

// KeyID returns the TUF key ID, which cannot fail for keys built by this package.
func KeyID(k *metadata.Key) string {
	id, err := k.ID()
	if err != nil {
		panic(fmt.Sprintf("tufrepo: key ID of a validated key: %v", err))
	}
	return id
}

// Fingerprint is a short, human-comparable form of a public key: SHA-256 of its PKIX
// encoding, as "SHA256:" and 16 groups of four hex digits.
func Fingerprint(k *metadata.Key) (string, error) {
	pub, err := k.ToPublicKey()
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	h := hex.EncodeToString(sum[:])
	var b strings.Builder
	b.WriteString("SHA256:")
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+4])
	}
	return b.String(), nil
}

// KeyFile is a private key encrypted at rest, with its public half in the clear so that
// listing keys needs no passphrase.
type KeyFile struct {
	Name      string          `json:"name,omitempty"`
	KeyID     string          `json:"keyid"`
	Public    api.Key         `json:"public"`
	Encrypted json.RawMessage `json:"encrypted_private_key"`
}

// KDFStrength selects the scrypt cost of key encryption. Tests use KDFFast.
type KDFStrength = encrypted.KDFParameterStrength

const (
	KDFStandard = encrypted.Standard
	KDFFast     = encrypted.Legacy
)

// EncryptKey seals priv (PKCS#8) with passphrase using scrypt and NaCl secretbox.
func EncryptKey(name string, priv crypto.Signer, passphrase []byte, strength KDFStrength) (*KeyFile, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("an empty passphrase is not allowed")
	}
	pk, err := PublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	sealed, err := encrypted.EncryptWithCustomKDFParameters(der, passphrase, strength)
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	return &KeyFile{Name: name, KeyID: KeyID(pk), Public: KeyToAPI(pk), Encrypted: sealed}, nil
}

// ErrWrongPassphrase is returned when a key file does not open with the passphrase given.
var ErrWrongPassphrase = errors.New("wrong passphrase or corrupted key file")

// Decrypt opens the key file and checks that the private key matches the public key.
func (kf *KeyFile) Decrypt(passphrase []byte) (crypto.Signer, error) {
	der, err := encrypted.Decrypt(kf.Encrypted, passphrase)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	pk, err := PublicKey(s.Public())
	if err != nil {
		return nil, err
	}
	if KeyID(pk) != kf.KeyID {
		return nil, fmt.Errorf("key file %q: private key does not match key ID %s", kf.Name, kf.KeyID)
	}
	if pub, err := kf.TUFKey(); err != nil || KeyID(pub) != kf.KeyID {
		return nil, fmt.Errorf("key file %q: its public key does not match key ID %s", kf.Name, kf.KeyID)
	}
	return s, nil
}

// TUFKey returns the public key of the file in TUF form.
func (kf *KeyFile) TUFKey() (*metadata.Key, error) { return KeyFromAPI(kf.Public) }

// ParseKeyFile reads a key file.
func ParseKeyFile(data []byte) (*KeyFile, error) {
	var kf KeyFile
	if err := strictjson.Check(data, strictjson.FieldsOf(kf)); err != nil {
		return nil, fmt.Errorf("parsing key file: %w", err)
	}
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("parsing key file: %w", err)
	}
	if kf.KeyID == "" || len(kf.Encrypted) == 0 {
		return nil, errors.New("parsing key file: not a Cairn key file (no keyid or encrypted_private_key)")
	}
	return &kf, nil
}
