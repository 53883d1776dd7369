package keyuri_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/softhsm"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/keyuri"
	"github.com/sigstore/sigstore/pkg/signature/kms/fake"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// token holds the keys the tests sign with; untouched has a key that no test logs in to
// with the right PIN (a PKCS#11 login holds for the whole process and token).
var token, untouched *softhsm.Token

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-softhsm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	token, err = softhsm.Setup(dir, "cairn-test")
	if err == nil {
		for _, k := range []struct {
			label string
			id    byte
			kt    string
		}{{"ec", 1, softhsm.ECDSAP256}, {"ed", 2, softhsm.Ed25519}, {"twin", 3, softhsm.ECDSAP256}, {"twin", 4, softhsm.Ed25519}} {
			if _, err = token.GenerateKey(k.label, k.id, k.kt); err != nil {
				break
			}
		}
	}
	if err == nil {
		if untouched, err = token.Another("cairn-untouched"); err == nil {
			_, err = untouched.GenerateKey("ec", 1, softhsm.ECDSAP256)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "setting up SoftHSM2:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func noEnv(string) string { return "" }

// verifyTUF signs a snapshot with s and checks it with go-tuf, as a client would.
func verifyTUF(t *testing.T, o *tufrepo.OnlineSigner) {
	t.Helper()
	ctx := context.Background()
	if err := o.Probe(ctx); err != nil {
		t.Fatalf("probe: %v", err)
	}
	raw, err := tufrepo.SignEnvelope(ctx, (&tufrepo.SnapshotIndex{}).EncodeSigned(1, time.Now().Add(time.Hour)), o)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := metadata.Snapshot().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	root := metadata.Root(time.Now().Add(time.Hour))
	if err := root.Signed.AddKey(o.Key, tufrepo.RoleSnapshot); err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(tufrepo.RoleSnapshot, snap); err != nil {
		t.Fatalf("go-tuf refuses the snapshot signed by the token: %v", err)
	}
}

func TestPKCS11Signers(t *testing.T) {
	base := "pkcs11:token=cairn-test;%s?module-path=" + token.Module + "&pin-value=" + token.PIN
	tests := []struct {
		name, path string
		keyType    string
	}{
		{"ECDSA by label", "object=ec", "ecdsa"},
		{"Ed25519 by label", "object=ed", "ed25519"},
		{"ECDSA by id", "id=%01", "ecdsa"},
		{"Ed25519 by label and id", "object=twin;id=%04", "ed25519"},
		{"by module-name", "object=ec", "ecdsa"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uri := fmt.Sprintf(base, tc.path)
			if strings.Contains(tc.name, "module-name") {
				uri = "pkcs11:token=cairn-test;object=ec?module-name=softhsm2&pin-value=" + token.PIN
			}
			s, err := keyuri.Open(context.Background(), uri, noEnv)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			o, err := tufrepo.NewOnlineSigner(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if o.Key.Type != tc.keyType {
				t.Fatalf("key type %s, want %s", o.Key.Type, tc.keyType)
			}
			verifyTUF(t, o)
		})
	}
}

// The PIN can come from a file or the environment instead of the URI.
func TestPKCS11PINSources(t *testing.T) {
	pinFile := t.TempDir() + "/pin"
	if err := os.WriteFile(pinFile, []byte(token.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := "pkcs11:token=cairn-test;object=ed?module-path=" + token.Module
	for name, tc := range map[string]struct {
		uri string
		env func(string) string
	}{
		"pin-source path":     {uri + "&pin-source=" + pinFile, noEnv},
		"pin-source file URI": {uri + "&pin-source=file:" + pinFile, noEnv},
		"CAIRN_PKCS11_PIN": {uri, func(k string) string {
			if k == "CAIRN_PKCS11_PIN" {
				return token.PIN
			}
			return ""
		}},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := keyuri.Open(context.Background(), tc.uri, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			o, err := tufrepo.NewOnlineSigner(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			verifyTUF(t, o)
		})
	}
}

// One signer used from many goroutines: PKCS#11 sessions are not thread-safe, so the
// signer must serialise; every signature must verify.
func TestPKCS11Concurrent(t *testing.T) {
	s, err := keyuri.Open(context.Background(), token.URI("ec"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- o.Probe(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestPKCS11Errors(t *testing.T) {
	m := "?module-path=" + token.Module
	tests := []struct {
		name     string
		uri      string
		env      func(string) string
		contains []string
	}{
		{"wrong PIN", "pkcs11:token=cairn-untouched;object=ec" + m + "&pin-value=9999", noEnv, []string{"refused the PIN", `"ec"`}},
		{"no PIN", "pkcs11:token=cairn-test;object=ec" + m, noEnv, []string{"no PKCS#11 PIN", "CAIRN_PKCS11_PIN", "pin-source"}},
		{"unknown token", "pkcs11:token=nope;object=ec" + m + "&pin-value=9999", noEnv, []string{"no PKCS#11 token matches", `"cairn-test"`}},
		{"unknown key", "pkcs11:token=cairn-test;object=missing" + m + "&pin-value=" + token.PIN, noEnv, []string{`"missing"`, "no private key", "pkcs11-tool -O"}},
		{"ambiguous key", "pkcs11:token=cairn-test;object=twin" + m + "&pin-value=" + token.PIN, noEnv, []string{"more than one private key", "id="}},
		{"missing module", "pkcs11:token=cairn-test;object=ec?module-path=/nonexistent/lib.so&pin-value=9999", noEnv, []string{"cannot load PKCS#11 module /nonexistent/lib.so"}},
		{"unknown module name", "pkcs11:token=cairn-test;object=ec?module-name=nonesuch&pin-value=9999", noEnv, []string{`module "nonesuch" not found`, "module-path"}},
		{"missing PIN file", "pkcs11:token=cairn-test;object=ec" + m + "&pin-source=/nonexistent/pin", noEnv, []string{"reading the PKCS#11 PIN"}},
		{"no key named", "pkcs11:token=cairn-test" + m + "&pin-value=9999", noEnv, []string{"names no key", "object="}},
		{"no module", "pkcs11:token=cairn-test;object=ec?pin-value=9999", noEnv, []string{"names no module", "module-path"}},
		{"relative module", "pkcs11:object=ec?module-path=lib.so&pin-value=9999", noEnv, []string{"module-path must be absolute"}},
		{"unknown attribute", "pkcs11:token=cairn-test;objekt=ec" + m + "&pin-value=9999", noEnv, []string{`unknown path attribute "objekt"`}},
		{"unknown query attribute", "pkcs11:object=ec" + m + "&pin=9999", noEnv, []string{`unknown query attribute "pin"`}},
		{"repeated attribute", "pkcs11:object=ec;object=ed" + m, noEnv, []string{`"object" appears twice`}},
		{"public key type", "pkcs11:object=ec;type=public" + m, noEnv, []string{"type=public", "private key"}},
		{"both PIN forms", "pkcs11:object=ec" + m + "&pin-value=9999&pin-source=/x", noEnv, []string{"not both"}},
		{"bad escape", "pkcs11:object=e%zz" + m + "&pin-value=9999", noEnv, []string{"bad percent-encoding"}},
		{"not name=value", "pkcs11:object" + m + "&pin-value9999", noEnv, []string{"not name=value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := keyuri.Open(context.Background(), tc.uri, tc.env)
			if err == nil {
				t.Fatalf("opened %T", s)
			}
			for _, c := range tc.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not say %q", err, c)
				}
			}
			if strings.Contains(err.Error(), "9999") || strings.Contains(err.Error(), token.PIN) {
				t.Errorf("error leaks the PIN: %v", err)
			}
		})
	}
}

func TestKMSFake(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, priv := range map[string]crypto.Signer{"ecdsa": ecKey, "ed25519": edKey} {
		t.Run(name, func(t *testing.T) {
			// The fake provider signs with the key in the context: the same code path as
			// awskms:// and the others, without a cloud.
			ctx := context.WithValue(context.Background(), fake.KmsCtxKey{}, crypto.PrivateKey(priv))
			s, err := keyuri.Open(ctx, "fakekms://online", noEnv)
			if err != nil {
				t.Fatal(err)
			}
			o, err := tufrepo.NewOnlineSigner(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tufrepo.PublicKey(priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			if o.KeyID != tufrepo.KeyID(want) {
				t.Fatalf("key ID %s, want %s", o.KeyID, tufrepo.KeyID(want))
			}
			verifyTUF(t, o)
		})
	}
}

// Each KMS scheme reaches its provider (not "unknown scheme"), and a provider that cannot
// be reached fails with an error that names the key without its secrets.
func TestKMSSchemesReachProviders(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "s3cret-token")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cret-key")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, uri := range []string{
		"hashivault://cairn-timestamp",
		"openbao://cairn-timestamp",
		"awskms://127.0.0.1:1/alias/cairn-timestamp",
	} {
		t.Run(uri, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := keyuri.Open(ctx, uri, noEnv)
			if err == nil {
				t.Fatal("opened a key on a provider that does not exist")
			}
			msg := err.Error()
			if strings.Contains(msg, "unknown scheme") || strings.Contains(msg, "s3cret") {
				t.Fatalf("error %q", msg)
			}
			if !strings.Contains(msg, keyuri.Redact(uri)) {
				t.Errorf("error %q does not name the key", msg)
			}
		})
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	for _, uri := range []string{"ftp://host/key?pin=s3cret", "/abs/key.json", "sftp://u:s3cret@h/k"} {
		_, err := keyuri.Open(context.Background(), uri, noEnv)
		if err == nil || !strings.Contains(err.Error(), "unknown scheme") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v", uri, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"pkcs11:token=a;object=b?module-path=/x.so&pin-value=1234": "pkcs11:token=a;object=b",
		"hashivault://key?token=s3cret":                            "hashivault://key",
		"file:///k.json?passphrase-file=/p":                        "file:///k.json",
		"awskms://u:pw@host/alias/k":                               "awskms://host/alias/k",
	} {
		if got := keyuri.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkPKCS11Sign measures one signature (with its verification) on SoftHSM2, for
// comparison with BenchmarkOnlineSign in tufrepo (keys in memory).
func BenchmarkPKCS11Sign(b *testing.B) {
	for _, label := range []string{"ec", "ed"} {
		s, err := keyuri.Open(context.Background(), token.URI(label), noEnv)
		if err != nil {
			b.Fatal(err)
		}
		o, err := tufrepo.NewOnlineSigner(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		payload := make([]byte, 400)
		b.Run(o.Key.Type, func(b *testing.B) {
			for b.Loop() {
				if _, err := o.Sign(context.Background(), payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
