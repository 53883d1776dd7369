package tlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cairn-dev/cairn/api"
)

// Key details (sigstore protobuf-specs PublicKeyDetails) of the entries Cairn logs.
const (
	KeyDetailsECDSAP256 = "PKIX_ECDSA_P256_SHA_256"
	KeyDetailsEd25519ph = "PKIX_ED25519_PH"
)

// HashedRekordRequest is the body of POST /api/v2/log/entries for a hashedrekord v0.0.2.
type HashedRekordRequest struct {
	HashedRekord hashedRekordRequestV002 `json:"hashedRekordRequestV002"`
}

type hashedRekordRequestV002 struct {
	Digest    []byte         `json:"digest"`
	Signature rekorSignature `json:"signature"`
}

type rekorSignature struct {
	Content  []byte        `json:"content"`
	Verifier rekorVerifier `json:"verifier"`
}

type rekorVerifier struct {
	PublicKey  *rekorPublicKey `json:"publicKey,omitempty"`
	KeyDetails string          `json:"keyDetails"`
}

type rekorPublicKey struct {
	RawBytes []byte `json:"rawBytes"`
}

func newRequest(digest, sig, pkix []byte, details string) HashedRekordRequest {
	return HashedRekordRequest{HashedRekord: hashedRekordRequestV002{
		Digest:    digest,
		Signature: rekorSignature{Content: sig, Verifier: rekorVerifier{PublicKey: &rekorPublicKey{RawBytes: pkix}, KeyDetails: details}},
	}}
}

func marshalPKIX(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return der, nil
}

// transparencyLogEntry is Rekor v2's answer (protojson: int64 as strings, bytes base64,
// zero values left out).
type transparencyLogEntry struct {
	LogIndex int64 `json:"logIndex,string"`
	LogID    struct {
		KeyID []byte `json:"keyId"`
	} `json:"logId"`
	KindVersion struct {
		Kind    string `json:"kind"`
		Version string `json:"version"`
	} `json:"kindVersion"`
	InclusionProof *struct {
		LogIndex   int64    `json:"logIndex,string"`
		RootHash   []byte   `json:"rootHash"`
		TreeSize   int64    `json:"treeSize,string"`
		Hashes     [][]byte `json:"hashes"`
		Checkpoint struct {
			Envelope string `json:"envelope"`
		} `json:"checkpoint"`
	} `json:"inclusionProof"`
	CanonicalizedBody []byte `json:"canonicalizedBody"`
}

// Client talks to a Rekor v2 log over its HTTP API.
type Client struct {
	// URL is the log's base URL (the API is under /api/v2).
	URL  string
	HTTP *http.Client
}

// Error is a refusal or failure answered by the log.
type Error struct {
	Status int
	Body   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("the transparency log answered %d: %s", e.Status, e.Body)
}

// Permanent reports whether the log refused the request itself (4xx other than 408/429):
// retrying the same request will not help.
func (e *Error) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// Submit adds an entry and returns it with its inclusion proof. Rekor v2 answers only once
// a checkpoint covers the entry, so callers should allow it 20 s or more.
func (c *Client) Submit(ctx context.Context, req HashedRekordRequest) (*api.RekorEntry, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding log request: %w", err)
	}
	u, err := url.JoinPath(c.URL, "/api/v2/log/entries")
	if err != nil {
		return nil, fmt.Errorf("transparency log URL %q: %w", c.URL, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building log request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("submitting to the transparency log: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the transparency log's answer: %w", err)
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusCreated {
		return nil, &Error{Status: res.StatusCode, Body: strings.TrimSpace(string(raw[:min(len(raw), 512)]))}
	}
	return ParseEntry(raw)
}

// ParseEntry converts Rekor v2's TransparencyLogEntry JSON.
func ParseEntry(raw []byte) (*api.RekorEntry, error) {
	var t transparencyLogEntry
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("decoding the transparency log's entry: %w", err)
	}
	if t.InclusionProof == nil {
		return nil, errors.New("the transparency log's entry has no inclusion proof")
	}
	if len(t.CanonicalizedBody) == 0 {
		return nil, errors.New("the transparency log's entry has no body")
	}
	p := t.InclusionProof
	hashes := p.Hashes
	if hashes == nil {
		hashes = [][]byte{}
	}
	return &api.RekorEntry{
		LogIndex: t.LogIndex, LogID: t.LogID.KeyID, Kind: t.KindVersion.Kind, APIVersion: t.KindVersion.Version,
		CanonicalizedBody: t.CanonicalizedBody,
		InclusionProof:    api.InclusionProof{LogIndex: p.LogIndex, TreeSize: p.TreeSize, RootHash: p.RootHash, Hashes: hashes, Checkpoint: p.Checkpoint.Envelope},
	}, nil
}

// ParsePublicKey reads a log's public key (PEM "PUBLIC KEY", PKIX): Ed25519 or ECDSA.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("no PEM block: want a PEM \"PUBLIC KEY\" (PKIX)")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	switch pub.(type) {
	case ed25519.PublicKey, *ecdsa.PublicKey:
		return pub, nil
	default:
		return nil, fmt.Errorf("unsupported log key type %T: want Ed25519 or ECDSA", pub)
	}
}

// MarshalPublicKey encodes a log key as PEM.
func MarshalPublicKey(pub crypto.PublicKey) (string, error) {
	der, err := marshalPKIX(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
