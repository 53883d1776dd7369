package rekortest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// Fake is an in-process log that speaks Rekor v2's create-entry API (hashedrekord 0.0.2
// with a public key, ECDSA P-256 or Ed25519ph, as rekor-tiles v2.3.0 verifies them) and
// answers with an RFC 6962 inclusion proof and an Ed25519-signed checkpoint. It keeps the
// fast tests (make test) independent of the real server; the real one is Start.
type Fake struct {
	URL       string
	Origin    string
	PublicKey ed25519.PublicKey
	PublicPEM []byte

	mu     sync.Mutex
	tree   *testonly.Tree
	signer note.Signer
	down   bool
	hang   chan struct{} // non-nil: requests wait until it is closed (or they are canceled)
	srv    *httptest.Server
}

// NewFake starts a fake log on loopback, stopped when the test ends.
func NewFake(t testing.TB) *Fake {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "fake.rekor.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{Origin: "fake.rekor.test", tree: testonly.New(rfc6962.DefaultHasher), signer: signer}
	// The verifier key's last field is base64(0x01 || Ed25519 public key).
	raw, err := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize {
		t.Fatalf("unexpected note verifier key %q", vkey)
	}
	f.PublicKey = ed25519.PublicKey(raw[1:])
	der, _ := x509.MarshalPKIXPublicKey(f.PublicKey)
	f.PublicPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(func() { f.SetHang(false); f.srv.Close() })
	return f
}

// SetDown makes the log answer 503 (true) or work again (false).
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// SetHang makes the log accept connections and never answer (true) until it is set back
// (false): a log that is up but stuck.
func (f *Fake) SetHang(hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case hang && f.hang == nil:
		f.hang = make(chan struct{})
	case !hang && f.hang != nil:
		close(f.hang)
		f.hang = nil
	}
}

// Size is the number of entries.
func (f *Fake) Size() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tree.Size()
}

type fakeRequest struct {
	HashedRekord *struct {
		Digest    []byte `json:"digest"`
		Signature struct {
			Content  []byte `json:"content"`
			Verifier struct {
				PublicKey *struct {
					RawBytes []byte `json:"rawBytes"`
				} `json:"publicKey"`
				KeyDetails string `json:"keyDetails"`
			} `json:"verifier"`
		} `json:"signature"`
	} `json:"hashedRekordRequestV002"`
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if h := f.hang; h != nil {
		f.mu.Unlock()
		select {
		case <-h:
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if f.down {
		http.Error(w, `{"code":14,"message":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/log/entries" {
		http.NotFound(w, r)
		return
	}
	var req fakeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.HashedRekord == nil || req.HashedRekord.Signature.Verifier.PublicKey == nil {
		http.Error(w, `{"code":3,"message":"invalid hashedrekord request"}`, http.StatusBadRequest)
		return
	}
	hr := req.HashedRekord
	pub, err := x509.ParsePKIXPublicKey(hr.Signature.Verifier.PublicKey.RawBytes)
	if err != nil {
		http.Error(w, `{"code":3,"message":"bad key"}`, http.StatusBadRequest)
		return
	}
	alg, ok := "", false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		alg = "SHA2_256"
		ok = hr.Signature.Verifier.KeyDetails == "PKIX_ECDSA_P256_SHA_256" && len(hr.Digest) == 32 && ecdsa.VerifyASN1(k, hr.Digest, hr.Signature.Content)
	case ed25519.PublicKey:
		alg = "SHA2_512"
		ok = hr.Signature.Verifier.KeyDetails == "PKIX_ED25519_PH" && len(hr.Digest) == 64 &&
			ed25519.VerifyWithOptions(k, hr.Digest, hr.Signature.Content, &ed25519.Options{Hash: crypto.SHA512}) == nil
	}
	if !ok {
		http.Error(w, `{"code":3,"message":"invalid hashedrekord request"}`, http.StatusBadRequest)
		return
	}
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "0.0.2", "kind": "hashedrekord",
		"spec": map[string]any{"hashedRekordV002": map[string]any{
			"data":      map[string]any{"algorithm": alg, "digest": hr.Digest},
			"signature": map[string]any{"content": hr.Signature.Content, "verifier": map[string]any{"keyDetails": hr.Signature.Verifier.KeyDetails, "publicKey": map[string]any{"rawBytes": hr.Signature.Verifier.PublicKey.RawBytes}}},
		}},
	})
	index := f.tree.Size()
	f.tree.AppendData(body)
	size := f.tree.Size()
	proof, err := f.tree.InclusionProof(index, size)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	root := f.tree.Hash()
	var text bytes.Buffer
	fmt.Fprintf(&text, "%s\n%d\n%s\n", f.Origin, size, base64.StdEncoding.EncodeToString(root))
	cp, err := note.Sign(&note.Note{Text: text.String()}, f.signer)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if proof == nil {
		proof = [][]byte{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"logIndex":    strconv.FormatUint(index, 10),
		"logId":       map[string]any{"keyId": []byte("fake")},
		"kindVersion": map[string]any{"kind": "hashedrekord", "version": "0.0.2"},
		"inclusionProof": map[string]any{
			"logIndex": strconv.FormatUint(index, 10), "rootHash": root, "treeSize": strconv.FormatUint(size, 10),
			"hashes": proof, "checkpoint": map[string]any{"envelope": string(cp)},
		},
		"canonicalizedBody": body,
	})
}
