// Package sigstoretest runs real Sigstore services on loopback for end-to-end tests of
// keyless signing: Fulcio v1.8.8 (--ca ephemeralca, no CT log), the timestamp authority
// v2.1.3 (in-memory signer), and a small OIDC issuer of our own whose tokens Fulcio
// accepts. The transparency log is the Rekor v2 server of internal/rekortest. TrustedRoot
// describes the set as a Sigstore trusted_root.json, as sigstore-go builds one.
//
// Fulcio and the timestamp authority are built once with `go install` into
// <repo>/.cache/sigstore/bin (`make fulcio tsa`, part of `make test`), or taken from
// $CAIRN_FULCIO_BIN and $CAIRN_TSA_BIN. Like the Rekor tests they run when
// CAIRN_TEST_REKOR=1; a binary that is missing is built, never a reason to skip.
package sigstoretest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/go-jose/go-jose/v4"
	"github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Versions of the services the tests run.
const (
	FulcioVersion = "v1.8.8"
	TSAVersion    = "v2.1.3"
	// CosignVersion is the cosign that signs keyless attestations against these services
	// (e2e/attest_oci_test.go). Not the OCI clients' pinned v2.6.5: its sigstore-go (v1.1.4)
	// logs a DSSE envelope in Rekor v2 as a dsse entry, which rekor-tiles v2.3.0 refuses
	// ("invalid type, must be hashedrekord"); v3.1.3's (v1.2.2) logs it as a hashedrekord of
	// the envelope's PAE. v3.1.4 needs Go 1.27.
	CosignVersion = "v3.1.3"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// install builds pkg into the cache directory unless env names a binary or it is there.
func install(env, name, pkg string) (string, error) {
	if b := os.Getenv(env); b != "" {
		return b, nil
	}
	dir := filepath.Join(repoRoot(), ".cache", "sigstore", "bin")
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "install", pkg)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false")
	cmd.Dir = os.TempDir() // outside the module: go install pkg@version
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

var (
	fulcioBin = sync.OnceValues(func() (string, error) {
		return install("CAIRN_FULCIO_BIN", "fulcio", "github.com/sigstore/fulcio@"+FulcioVersion)
	})
	tsaBin = sync.OnceValues(func() (string, error) {
		return install("CAIRN_TSA_BIN", "timestamp-server", "github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server@"+TSAVersion)
	})
	cosignBin = sync.OnceValues(func() (string, error) {
		return install("CAIRN_COSIGN3_BIN", "cosign", "github.com/sigstore/cosign/v3/cmd/cosign@"+CosignVersion)
	})
)

// Cosign returns cosign CosignVersion, built once (`make cosign3`, ~10 min cold) or taken
// from $CAIRN_COSIGN3_BIN. Like the services it runs when CAIRN_TEST_REKOR=1.
func Cosign(t testing.TB) string {
	t.Helper()
	rekortest.Require(t)
	bin, err := cosignBin()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process runs bin with args until the test ends, its output in dir/name.log, and waits
// until GET ready answers 200.
func process(t testing.TB, dir, name, bin, ready string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	deadline := time.After(60 * time.Second)
	for {
		res, err := http.Get(ready)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited at start:\n%s", name, b)
		case <-deadline:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s did not answer %s in 60 s:\n%s", name, ready, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Issuer is an OIDC identity provider: discovery and JWKS over HTTP on loopback, and ID
// tokens minted by the test (ES256), which Fulcio verifies as it would Google's.
type Issuer struct {
	URL string
	key *ecdsa.PrivateKey
	srv *httptest.Server

	mu    sync.Mutex
	login string               // who the authorization endpoint logs in (SetLogin)
	codes map[string]authGrant // authorization codes not yet redeemed
}

// NewIssuer starts an issuer for the test.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &Issuer{key: key, codes: map[string]authGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth", is.authorize)
	mux.HandleFunc("POST /token", is.token)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/jwks",
			"authorization_endpoint": is.URL + "/auth", "token_endpoint": is.URL + "/token",
			"response_types_supported": []string{"code", "id_token"}, "subject_types_supported": []string{"public"},
			"code_challenge_methods_supported":      []string{"S256"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "test", Algorithm: string(jose.ES256), Use: "sig"}}})
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

// Token mints an ID token for email (verified), audience "sigstore", valid for ttl.
func (is *Issuer) Token(t testing.TB, email string, ttl time.Duration) string {
	t.Helper()
	tok, err := is.mint(email, "sigstore", "", ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mint signs an ID token; nonce is left out when empty.
func (is *Issuer) mint(email, audience, nonce string, ttl time.Duration) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: is.key, KeyID: "test"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	c := map[string]any{
		"iss": is.URL, "sub": email, "aud": audience, "email": email, "email_verified": true,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix(),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	claims, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := sig.Sign(claims)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Fulcio is a running Fulcio with an ephemeral CA that trusts one issuer.
type Fulcio struct {
	URL   string
	Chain []*x509.Certificate // leaf-most first: intermediates, then the root
}

// StartFulcio builds (once) and starts Fulcio trusting is, for the test.
func StartFulcio(t testing.TB, is *Issuer) *Fulcio {
	t.Helper()
	rekortest.Require(t)
	bin, err := fulcioBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := json.Marshal(map[string]any{"OIDCIssuers": map[string]any{is.URL: map[string]string{"IssuerURL": is.URL, "ClientID": "sigstore", "Type": "email"}}})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	f := &Fulcio{URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	process(t, dir, "fulcio", bin, f.URL+"/api/v2/trustBundle", "serve",
		"--ca", "ephemeralca", "--ct-log-url", "", "--config-path", cfgPath,
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(freePort(t)),
		"--metrics-port", strconv.Itoa(freePort(t)),
		// The default is one abstract socket per machine: parallel tests would share it.
		"--legacy-unix-domain-socket", filepath.Join(dir, "legacy.sock"))
	var tb struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	if err := getJSON(f.URL+"/api/v2/trustBundle", &tb); err != nil || len(tb.Chains) == 0 {
		t.Fatalf("Fulcio's trust bundle: %v (%d chains)", err, len(tb.Chains))
	}
	for _, p := range tb.Chains[0].Certificates {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		f.Chain = append(f.Chain, certs...)
	}
	return f
}

// TSA is a running timestamp authority.
type TSA struct {
	URL   string              // its timestamp endpoint, …/api/v1/timestamp
	Chain []*x509.Certificate // leaf first
}

// StartTSA builds (once) and starts a timestamp authority with an in-memory key.
func StartTSA(t testing.TB) *TSA {
	t.Helper()
	rekortest.Require(t)
	bin, err := tsaBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	// Its metrics listener is fixed at :2112 (timestamp-authority v2.1.3 has no flag for
	// it): one TSA per machine at a time, so tests in other processes (go test runs
	// packages in parallel) take turns. The lock is released after the process is gone
	// (cleanups run last-registered first).
	lockMachineWide(t, "tsa-metrics-2112", 10*time.Minute)
	process(t, dir, "timestamp-server", bin, base+"/api/v1/timestamp/certchain", "serve",
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--timestamp-signer", "memory", "--disable-ntp-monitoring")
	res, err := http.Get(base + "/api/v1/timestamp/certchain")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := cryptoutils.UnmarshalCertificatesFromPEM(raw)
	if err != nil || len(chain) == 0 {
		t.Fatalf("the TSA's certificate chain: %v (%d certificates)", err, len(chain))
	}
	return &TSA{URL: base + "/api/v1/timestamp", Chain: chain}
}

// TrustedRoot is the trusted_root.json of Fulcio f, Rekor v2 log r and timestamp
// authority a, made by sigstore-go. The log's base URL is https://<its checkpoint
// origin>: sigstore-go names the checkpoint's note verifier by that URL's host.
func TrustedRoot(t testing.TB, f *Fulcio, r *rekortest.Rekor, a *TSA) []byte {
	t.Helper()
	start := time.Now().Add(-time.Hour)
	ca := &root.FulcioCertificateAuthority{Root: f.Chain[len(f.Chain)-1], Intermediates: f.Chain[:len(f.Chain)-1], ValidityPeriodStart: start, URI: f.URL}
	_, logID, err := note.KeyHash(r.Origin, r.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]*root.TransparencyLog{fmt.Sprintf("%x", logID): {
		BaseURL: "https://" + r.Origin, ID: logID, ValidityPeriodStart: start,
		HashFunc: crypto.SHA256, PublicKey: r.PublicKey, SignatureHashFunc: crypto.Hash(0),
	}}
	tsa := &root.SigstoreTimestampingAuthority{Root: a.Chain[len(a.Chain)-1], Intermediates: a.Chain[1 : len(a.Chain)-1], Leaf: a.Chain[0], ValidityPeriodStart: start, URI: a.URL}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{ca}, nil, []root.TimestampingAuthority{tsa}, logs)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func getJSON(u string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, res.Status)
	}
	return json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(v)
}
