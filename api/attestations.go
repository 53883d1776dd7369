package api

import "time"

// MediaSigstoreBundle is the content type of a stored attestation as served, and the one a
// client sends with POST /api/v1/attestations/{sha256} (application/json is accepted too).
const MediaSigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"

// SignerIdentity is who signed an attestation, as the Fulcio certificate names them: the
// subject alternative name (an email, a URI such as a CI workflow) and the OIDC issuer that
// vouched for it. Two attestations with equal SAN and issuer are one identity.
type SignerIdentity struct {
	SAN    string `json:"san"`
	Issuer string `json:"issuer"`
}

// String is "SAN (issuer)".
func (i SignerIdentity) String() string { return i.SAN + " (" + i.Issuer + ")" }

// Attestation is a verified Sigstore bundle about a release file, as the server recorded
// it. Clients verify the bundle itself again: these fields are the server's reading.
type Attestation struct {
	// Seq orders the attestations of the whole repository (ascending as they were stored).
	Seq int64 `json:"seq"`
	// FileSHA256 is the hex sha256 of the release file the statement's subject names.
	FileSHA256 string `json:"file_sha256"`
	// BundleSHA256 is the hex sha256 of the exact bundle bytes (its ID).
	BundleSHA256  string         `json:"bundle_sha256"`
	Identity      SignerIdentity `json:"identity"`
	PredicateType string         `json:"predicate_type"`
	// SourceRepository and BuildSigner are the Fulcio certificate's source repository URI
	// and build signer URI extensions, when the signer was a CI workflow.
	SourceRepository string `json:"source_repository,omitempty"`
	BuildSigner      string `json:"build_signer,omitempty"`
	// LogTime is the earliest verified time of signing (the log's integrated time or an
	// RFC 3161 timestamp), LogIndex the first log entry's index.
	LogTime   time.Time `json:"log_time"`
	LogIndex  int64     `json:"log_index"`
	CreatedAt time.Time `json:"created_at"`
}

// AttestationList is one page of a file's attestations, oldest first.
type AttestationList struct {
	FileSHA256   string        `json:"file_sha256"`
	Attestations []Attestation `json:"attestations"`
	// Next is the seq to pass as ?after= for the next page; 0 when this is the last.
	Next int64 `json:"next,omitempty"`
}

// IdentityCount is one distinct signer identity and how many attestations it made.
type IdentityCount struct {
	SAN            string   `json:"san"`
	Issuer         string   `json:"issuer"`
	Count          int      `json:"count"`
	PredicateTypes []string `json:"predicate_types"`
}

// PredicateTypeCount is one predicate type and how many attestations carry it.
type PredicateTypeCount struct {
	PredicateType string `json:"predicate_type"`
	Count         int    `json:"count"`
}

// AttestationSummary is the server's summary of a file's attestations.
type AttestationSummary struct {
	FileSHA256     string               `json:"file_sha256"`
	Count          int                  `json:"count"`
	Identities     []IdentityCount      `json:"identities"`
	PredicateTypes []PredicateTypeCount `json:"predicate_types"`
	// FirstLogTime and LogTime bound the attestations' times of signing (absent when none).
	FirstLogTime *time.Time `json:"first_log_time,omitempty"`
	LastLogTime  *time.Time `json:"last_log_time,omitempty"`
}
