package api

import "time"

// Transparency log wire types: GET /api/v1/log/transparency[/{role}/{version}]. Every
// metadata version the server signs with an online key is submitted to a Rekor v2 log as a
// hashedrekord over the DSSE pre-authentication encoding (PAE) of an in-toto statement
// that names the metadata file; the statement is signed by the same online key that signed
// the metadata. package tlog builds and verifies them.

// TransparencyLogInfo describes the log the server submits to.
type TransparencyLogInfo struct {
	// URL is the Rekor v2 base URL.
	URL string `json:"url"`
	// PublicKey is the log's checkpoint key (PEM) the server was configured with, if any.
	// An auditor should get it from the log operator, not from the server it audits.
	PublicKey string `json:"public_key,omitempty"`
	// Origin is the checkpoint origin (the log's --hostname) the server expects, if set.
	Origin string `json:"origin,omitempty"`
	// Backlog counts signed metadata versions that have no log entry yet.
	Backlog int64 `json:"backlog"`
}

// TransparencyLogPage is one page of stored log entries, in the order they were stored.
// Log is absent when the server has no transparency log configured.
type TransparencyLogPage struct {
	Log     *TransparencyLogInfo   `json:"log,omitempty"`
	Entries []TransparencyLogEntry `json:"entries"`
	Next    string                 `json:"next,omitempty"`
}

// TransparencyLogEntry is the log entry of one signed metadata version.
type TransparencyLogEntry struct {
	Seq     int64  `json:"seq"`
	Role    string `json:"role"`
	Version int64  `json:"version"`
	// Length and SHA256 (hex) of the exact metadata file bytes, as the statement names them.
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	// KeyID is the TUF key ID of the online key that signed the metadata and the envelope.
	KeyID    string       `json:"keyid"`
	Envelope DSSEEnvelope `json:"envelope"`
	LogURL   string       `json:"log_url"`
	Rekor    RekorEntry   `json:"rekor"`
	LoggedAt time.Time    `json:"logged_at"`
}

// DSSEEnvelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse) in its
// standard JSON form: payload and signatures base64.
type DSSEEnvelope struct {
	PayloadType string          `json:"payloadType"`
	Payload     []byte          `json:"payload"`
	Signatures  []DSSESignature `json:"signatures"`
}

// DSSESignature is one signature of a DSSE envelope. For an Ed25519 key it is Ed25519ph
// (RFC 8032, SHA-512 prehash) over the PAE, which is what Rekor v2 verifies for Ed25519;
// for ECDSA P-256, ECDSA over SHA-256 of the PAE (ASN.1 DER).
type DSSESignature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"`
}

// RekorEntry is what the log returned for an entry (Rekor v2 TransparencyLogEntry).
type RekorEntry struct {
	LogIndex int64  `json:"log_index"`
	LogID    []byte `json:"log_id"`
	Kind     string `json:"kind"`
	// APIVersion is the kind's version, "0.0.2" for hashedrekord.
	APIVersion string `json:"api_version"`
	// CanonicalizedBody is the exact entry the log stores; its RFC 6962 leaf hash is what
	// the inclusion proof proves.
	CanonicalizedBody []byte         `json:"canonicalized_body"`
	InclusionProof    InclusionProof `json:"inclusion_proof"`
}

// InclusionProof proves the entry's leaf at LogIndex in the tree of TreeSize leaves with
// RootHash, which Checkpoint (a signed note, C2SP tlog-checkpoint) commits to.
type InclusionProof struct {
	LogIndex   int64    `json:"log_index"`
	TreeSize   int64    `json:"tree_size"`
	RootHash   []byte   `json:"root_hash"`
	Hashes     [][]byte `json:"hashes"`
	Checkpoint string   `json:"checkpoint"`
}
