package keyuri_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/keyuri"
)

// transit answers the two calls of Vault's (and OpenBao's) transit engine that sigstore's
// hashivault provider makes: read a key's public half, and sign. Neither Vault nor OpenBao
// can be installed here (see NOTES.md), so this loopback stand-in, written from Vault's API
// documentation, exercises the real provider client and Cairn's URI handling; it is not a
// test of Vault itself.
type transit struct {
	token    string
	keys     map[string]crypto.Signer
	disabled atomic.Bool
	signs    atomic.Int32
}

func (v *transit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Vault-Token") != v.token {
		http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/transit/")
	op, rest, _ := strings.Cut(path, "/")
	name, hash, _ := strings.Cut(rest, "/")
	key, ok := v.keys[name]
	if !ok {
		http.Error(w, `{"errors":["no such key"]}`, http.StatusNotFound)
		return
	}
	reply := func(data map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"data": data})
	}
	switch {
	case op == "keys" && r.Method == http.MethodGet:
		entry := map[string]any{}
		switch pub := key.Public().(type) {
		case ed25519.PublicKey:
			entry["name"], entry["public_key"] = "ed25519", base64.StdEncoding.EncodeToString(pub)
		default:
			der, _ := x509.MarshalPKIXPublicKey(pub)
			entry["name"], entry["public_key"] = "P-256", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		}
		reply(map[string]any{"latest_version": 1, "keys": map[string]any{"1": entry}})
	case op == "sign" && r.Method == http.MethodPut || op == "sign" && r.Method == http.MethodPost:
		v.signs.Add(1)
		if v.disabled.Load() {
			http.Error(w, `{"errors":["key is disabled for signing"]}`, http.StatusBadRequest)
			return
		}
		var req struct {
			Input     string `json:"input"`
			Prehashed bool   `json:"prehashed"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"errors":["bad body"]}`, http.StatusBadRequest)
			return
		}
		in, _ := base64.StdEncoding.DecodeString(req.Input)
		var sig []byte
		var err error
		switch k := key.(type) {
		case ed25519.PrivateKey:
			if req.Prehashed || hash != "" {
				http.Error(w, `{"errors":["ed25519 signs the message itself"]}`, http.StatusBadRequest)
				return
			}
			sig = ed25519.Sign(k, in)
		case *ecdsa.PrivateKey:
			if !req.Prehashed || hash != "sha2-256" || len(in) != sha256.Size {
				http.Error(w, `{"errors":["expected a prehashed sha2-256 input"]}`, http.StatusBadRequest)
				return
			}
			sig, err = ecdsa.SignASN1(rand.Reader, k, in)
		}
		if err != nil {
			http.Error(w, `{"errors":["signing failed"]}`, http.StatusInternalServerError)
			return
		}
		reply(map[string]any{"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig), "key_version": 1})
	default:
		http.Error(w, `{"errors":["unsupported path"]}`, http.StatusNotFound)
	}
}

func TestHashiVaultTransit(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	v := &transit{token: "s3cret-vault-token", keys: map[string]crypto.Signer{"cairn-ts": ec, "cairn-snap": ed}}
	srv := httptest.NewServer(v)
	defer srv.Close()
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", v.token)

	for _, tc := range []struct {
		uri string
		key crypto.Signer
	}{{"hashivault://cairn-ts", ec}, {"openbao://cairn-snap", ed}} {
		t.Run(tc.uri, func(t *testing.T) {
			s, err := keyuri.Open(context.Background(), tc.uri, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			o, err := tufrepo.NewOnlineSigner(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := tufrepo.PublicKey(tc.key.Public())
			if o.KeyID != tufrepo.KeyID(want) {
				t.Fatalf("key ID %s, want %s", o.KeyID, tufrepo.KeyID(want))
			}
			verifyTUF(t, o)
		})
	}

	// A key disabled in Vault: signing fails with Vault's reason, after the retries.
	s, err := keyuri.Open(context.Background(), "hashivault://cairn-ts", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	o.Retry = tufrepo.Retry{Attempts: 2}
	v.disabled.Store(true)
	before := v.signs.Load()
	_, err = o.Sign(context.Background(), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "key is disabled") || strings.Contains(err.Error(), v.token) {
		t.Fatalf("signing with a disabled key: %v", err)
	}
	if n := v.signs.Load() - before; n < 2 {
		t.Fatalf("%d sign requests, want at least 2 (retried)", n)
	}
}
