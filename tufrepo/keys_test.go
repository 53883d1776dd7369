package tufrepo

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

var testPassphrase = []byte("correct horse battery staple")

// encryptedKey generates a key of type kt and seals it with testPassphrase (KDFFast).
func encryptedKey(t *testing.T, kt KeyType) (crypto.Signer, *KeyFile) {
	t.Helper()
	priv, err := GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := EncryptKey("test-"+string(kt), priv, testPassphrase, KDFFast)
	if err != nil {
		t.Fatalf("EncryptKey: %v", err)
	}
	return priv, kf
}

// reparse round-trips a key file through its JSON form.
func reparse(t *testing.T, kf *KeyFile) *KeyFile {
	t.Helper()
	b, err := json.Marshal(kf)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseKeyFile(b)
	if err != nil {
		t.Fatalf("ParseKeyFile: %v", err)
	}
	return out
}

func TestEncryptKeyRoundTrip(t *testing.T) {
	t.Parallel() // scrypt
	for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
		t.Run(string(kt), func(t *testing.T) {
			priv, kf := encryptedKey(t, kt)
			if kf.Name != "test-"+string(kt) {
				t.Errorf("name %q", kf.Name)
			}
			if strings.Contains(string(kf.Encrypted), hex.EncodeToString(mustPKCS8(t, priv))[:32]) {
				t.Fatal("the private key appears in the clear")
			}
			kf = reparse(t, kf)
			pub, err := PublicKey(priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			if kf.KeyID != KeyID(pub) {
				t.Errorf("key file key ID %s, want %s", kf.KeyID, KeyID(pub))
			}
			tk, err := kf.TUFKey()
			if err != nil {
				t.Fatalf("TUFKey: %v", err)
			}
			if KeyID(tk) != kf.KeyID {
				t.Errorf("TUFKey's key ID %s differs from the file's %s", KeyID(tk), kf.KeyID)
			}
			got, err := kf.Decrypt(testPassphrase)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(priv.Public()) {
				t.Fatal("decrypted key differs from the original")
			}
			// The decrypted key signs what go-tuf verifies under the file's public key.
			s, err := NewSigner(got)
			if err != nil {
				t.Fatal(err)
			}
			o := &OnlineSigner{Signer: s, Key: tk, KeyID: kf.KeyID}
			md, err := metadata.Targets().FromBytes(signRole(t, newProjectRole(1, t0, nil), o))
			if err != nil {
				t.Fatal(err)
			}
			if err := delegationVerifier(t, "p", o).VerifyDelegate("p", md); err != nil {
				t.Fatalf("signature by the decrypted key does not verify: %v", err)
			}
		})
	}
}

func mustPKCS8(t *testing.T, k crypto.Signer) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// delegationVerifier is a targets role delegating name to s.
func delegationVerifier(t *testing.T, name string, s *OnlineSigner) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	signed, err := buildDelegator(1, t0, []ProjectDelegation{delegationFor(name, 1, s)})
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.Targets().FromBytes(Envelope(signed, nil))
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func TestKeyFileRefusals(t *testing.T) {
	t.Parallel() // scrypt
	_, kf := encryptedKey(t, KeyEd25519)
	_, other := encryptedKey(t, KeyEd25519)

	t.Run("empty passphrase refused", func(t *testing.T) {
		priv, _ := GenerateKey(KeyEd25519)
		if _, err := EncryptKey("x", priv, nil, KDFFast); err == nil {
			t.Fatal("EncryptKey accepted an empty passphrase")
		}
	})
	t.Run("P-384 refused", func(t *testing.T) {
		priv, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if _, err := EncryptKey("x", priv, testPassphrase, KDFFast); err == nil {
			t.Fatal("EncryptKey accepted a P-384 key")
		}
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		for _, p := range [][]byte{[]byte("wrong"), nil, append(testPassphrase, '\n')} {
			if _, err := kf.Decrypt(p); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("Decrypt(%q) = %v, want ErrWrongPassphrase", p, err)
			}
		}
	})
	t.Run("corrupted ciphertext", func(t *testing.T) {
		var enc map[string]any
		if err := json.Unmarshal(kf.Encrypted, &enc); err != nil {
			t.Fatal(err)
		}
		ct := enc["ciphertext"].(string)
		enc["ciphertext"] = "A" + ct[1:]
		if ct[0] == 'A' {
			enc["ciphertext"] = "B" + ct[1:]
		}
		bad := *kf
		bad.Encrypted, _ = json.Marshal(enc)
		if _, err := bad.Decrypt(testPassphrase); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("Decrypt of corrupted ciphertext = %v, want ErrWrongPassphrase", err)
		}
	})
	t.Run("tampered key ID", func(t *testing.T) {
		bad := *kf
		bad.KeyID = other.KeyID
		_, err := bad.Decrypt(testPassphrase)
		wantContains(t, err, "does not match key ID", other.KeyID, kf.Name)
		bad.KeyID = strings.Repeat("0", 64)
		wantContains(t, errOf(bad.Decrypt(testPassphrase)), "does not match key ID")
	})
	t.Run("another file's ciphertext", func(t *testing.T) {
		// Same passphrase, swapped encrypted halves: the key ID check catches it.
		bad := *kf
		bad.Encrypted = other.Encrypted
		wantContains(t, errOf(bad.Decrypt(testPassphrase)), "does not match key ID")
	})
	t.Run("not a key file", func(t *testing.T) {
		for _, in := range []string{"", "{", "[]", "{}", `{"keyid":"ab"}`, `{"encrypted_private_key":{}}`} {
			if _, err := ParseKeyFile([]byte(in)); err == nil {
				t.Errorf("ParseKeyFile(%q) succeeded", in)
			}
		}
		wantContains(t, errOf2(ParseKeyFile([]byte(`{"name":"x"}`))), "not a Cairn key file")
	})
}

func errOf(_ crypto.Signer, err error) error { return err }

func errOf2(_ *KeyFile, err error) error { return err }

// BUG: a key file whose clear public half was replaced still decrypts.
func TestKeyFilePublicHalfChecked(t *testing.T) {
	_, kf := encryptedKey(t, KeyEd25519)
	_, other := encryptedKey(t, KeyEd25519)
	bad := *kf
	bad.Public = other.Public
	if _, err := bad.Decrypt(testPassphrase); err == nil {
		t.Fatal("Decrypt accepted a key file whose public key is another key's")
	}
}

func TestKeyFromAPI(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemOf := func(pub crypto.PublicKey) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	key := func(kt, scheme, pub string) api.Key {
		var k api.Key
		k.KeyType, k.Scheme, k.KeyVal.Public = kt, scheme, pub
		return k
	}
	tests := []struct {
		name     string
		in       api.Key
		ok       bool
		contains string
	}{
		{"ed25519", key("ed25519", "ed25519", hex.EncodeToString(edPub)), true, ""},
		{"ecdsa P-256 (keytype ecdsa)", key("ecdsa", "ecdsa-sha2-nistp256", pemOf(&ecPriv.PublicKey)), true, ""},
		{"ecdsa P-256 (keytype ecdsa-sha2-nistp256)", key("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", pemOf(&ecPriv.PublicKey)), true, ""},
		{"rsa", key("rsa", "rsassa-pss-sha256", pemOf(&rsaPriv.PublicKey)), false, `"rsa"`},
		{"ed25519 31 bytes", key("ed25519", "ed25519", hex.EncodeToString(edPub[:31])), false, "32 bytes"},
		{"ed25519 33 bytes", key("ed25519", "ed25519", hex.EncodeToString(append(edPub, 0))), false, "32 bytes"},
		{"ed25519 not hex", key("ed25519", "ed25519", strings.Repeat("zz", 32)), false, "hex"},
		{"ed25519 empty", key("ed25519", "ed25519", ""), false, ""},
		{"ed25519 with ecdsa scheme", key("ed25519", "ecdsa-sha2-nistp256", hex.EncodeToString(edPub)), false, "not supported"},
		{"ecdsa with ed25519 scheme", key("ecdsa", "ed25519", pemOf(&ecPriv.PublicKey)), false, "not supported"},
		{"ecdsa P-384", key("ecdsa", "ecdsa-sha2-nistp256", pemOf(&p384.PublicKey)), false, "P-256"},
		{"ecdsa P-384 with its own scheme", key("ecdsa", "ecdsa-sha2-nistp384", pemOf(&p384.PublicKey)), false, "not supported"},
		{"ecdsa garbage PEM", key("ecdsa", "ecdsa-sha2-nistp256", "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"), false, "PEM"},
		{"ecdsa not PEM", key("ecdsa", "ecdsa-sha2-nistp256", "hello"), false, "PEM"},
		{"ecdsa key that is ed25519", key("ecdsa", "ecdsa-sha2-nistp256", pemOf(edPub)), false, ""},
		{"ecdsa key that is rsa", key("ecdsa", "ecdsa-sha2-nistp256", pemOf(&rsaPriv.PublicKey)), false, ""},
		{"empty", api.Key{}, false, "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := func() (k *metadata.Key, err error) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("KeyFromAPI panicked: %v", r)
					}
				}()
				return KeyFromAPI(tc.in)
			}()
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if _, err := k.ToPublicKey(); err != nil {
					t.Fatalf("accepted key does not convert: %v", err)
				}
				back := KeyToAPI(k)
				if back != tc.in {
					t.Errorf("KeyToAPI(KeyFromAPI(k)) = %+v, want %+v", back, tc.in)
				}
				return
			}
			if k != nil {
				t.Error("returned a key with the error")
			}
			if tc.contains != "" {
				wantCode(t, err, api.CodeInvalidKey, tc.contains)
			} else {
				wantCode(t, err, api.CodeInvalidKey)
			}
		})
	}
}

func TestGenerateAndConvertKeys(t *testing.T) {
	if _, err := GenerateKey("rsa"); err == nil {
		t.Error("GenerateKey(rsa) succeeded")
	}
	k, err := GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.(ed25519.PrivateKey); !ok {
		t.Errorf("default key type %T, want ed25519", k)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewSigner(p384); err == nil {
		t.Error("NewSigner accepted P-384")
	}
	if _, err := NewSigner(rsaPriv); err == nil {
		t.Error("NewSigner accepted RSA")
	}
	if _, err := PublicKey(&p384.PublicKey); err == nil {
		t.Error("PublicKey accepted P-384")
	}
	if _, err := PublicKey(&rsaPriv.PublicKey); err == nil {
		t.Error("PublicKey accepted RSA")
	}
	if _, err := PublicKey(ed25519.PublicKey(make([]byte, 31))); err == nil {
		t.Error("PublicKey accepted a 31-byte ed25519 key")
	}
	// Signers built here verify with sigstore's verifier for the same key.
	for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
		priv, _ := GenerateKey(kt)
		s, err := NewSigner(priv)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.SignMessage(strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		h := crypto.SHA256
		if kt == KeyEd25519 {
			h = crypto.Hash(0)
		}
		v, _ := signature.LoadVerifier(priv.Public(), h)
		if err := v.VerifySignature(strings.NewReader(string(sig)), strings.NewReader("payload")); err != nil {
			t.Errorf("%s: %v", kt, err)
		}
	}
}

var fingerprintRE = regexp.MustCompile(`^SHA256:[0-9a-f]{4}(:[0-9a-f]{4}){15}$`)

func TestFingerprint(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
		priv, _ := GenerateKey(kt)
		k, err := PublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		fp, err := Fingerprint(k)
		if err != nil {
			t.Fatal(err)
		}
		if !fingerprintRE.MatchString(fp) {
			t.Errorf("%s fingerprint %q is not SHA256: and 16 groups of four hex digits", kt, fp)
		}
		der, _ := x509.MarshalPKIXPublicKey(priv.Public())
		sum := sha256.Sum256(der)
		if strings.ReplaceAll(strings.TrimPrefix(fp, "SHA256:"), ":", "") != hex.EncodeToString(sum[:]) {
			t.Errorf("%s fingerprint is not SHA-256 of the PKIX encoding", kt)
		}
		// Same key, same fingerprint, whichever wire form it came in.
		again, _ := KeyFromAPI(KeyToAPI(k))
		if fp2, _ := Fingerprint(again); fp2 != fp {
			t.Errorf("fingerprint changed across KeyToAPI/KeyFromAPI: %s vs %s", fp, fp2)
		}
		other, _ := GenerateKey(kt)
		ok, _ := PublicKey(other.Public())
		if fp3, _ := Fingerprint(ok); fp3 == fp {
			t.Error("two keys have the same fingerprint")
		}
	}
	if _, err := Fingerprint(&metadata.Key{Type: "ed25519", Scheme: "ed25519", Value: metadata.KeyVal{PublicKey: "zz"}}); err == nil {
		t.Error("Fingerprint of a malformed key succeeded")
	}
}
