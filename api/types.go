package api

import (
	"encoding/json"
	"time"
)

// Media types.
const (
	MediaProblem = "application/problem+json"
	MediaJSON    = "application/json"
)

// Key is a TUF public key as it appears in metadata ("keytype", "scheme", "keyval").
type Key struct {
	KeyType string `json:"keytype"`
	Scheme  string `json:"scheme"`
	KeyVal  struct {
		Public string `json:"public"`
	} `json:"keyval"`
}

// CreateProjectRequest is the body of POST /api/v1/projects.
type CreateProjectRequest struct {
	// Name is normalised by the server (lowercase); it must already be in normal form.
	Name string `json:"name"`
	// Keys are the maintainers' public keys; Threshold of them must sign the project role.
	Keys      []Key `json:"keys"`
	Threshold int   `json:"threshold"`
	// Metadata is the exact bytes of version 1 of the project role, signed by the
	// maintainers (base64 in JSON).
	Metadata []byte `json:"metadata"`
}

// Maintainer is one key delegated to a project.
type Maintainer struct {
	KeyID       string `json:"keyid"`
	KeyType     string `json:"keytype"`
	Scheme      string `json:"scheme"`
	Public      string `json:"public"`
	Fingerprint string `json:"fingerprint"`
}

// Project describes a project and its delegation.
type Project struct {
	Name        string       `json:"name"`
	Delegator   string       `json:"delegator"`
	Threshold   int          `json:"threshold"`
	Maintainers []Maintainer `json:"maintainers"`
	// RoleVersion is the latest accepted version of the project role; PublishedVersion
	// the latest one in a published snapshot.
	RoleVersion      int64 `json:"role_version"`
	PublishedVersion int64 `json:"published_version"`
	// DelegationVersion counts maintainer changes; the next change is this + 1. Delegated
	// is false while the current keys and threshold wait for the publisher.
	DelegationVersion int64     `json:"delegation_version"`
	Delegated         bool      `json:"delegated"`
	CreatedAt         time.Time `json:"created_at"`
}

// MaintainerChangeResult answers a maintainer change or a signature on one.
type MaintainerChangeResult struct {
	Project string `json:"project"`
	Version int64  `json:"version"`
	// Status is "applied" (published with the new recently-claimed metadata), "queued"
	// (a claimed project: waits for the admins' next offline signing) or "pending" (needs
	// more signatures of the current maintainers: Signatures of Threshold).
	Status     string `json:"status"`
	Signatures int    `json:"signatures"`
	Threshold  int    `json:"threshold"`
}

// ProjectList is one page of projects.
type ProjectList struct {
	Projects []Project `json:"projects"`
	// Next is the cursor for the next page; empty on the last page.
	Next string `json:"next,omitempty"`
}

// File is one release file.
type File struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	// Attestations are the sha256 digests of Sigstore bundles that the maintainers bound
	// to the file at upload (cairn upload --attest), from the signed target's custom data.
	// Only the client fills it in, from verified metadata.
	Attestations []string `json:"attestations,omitempty"`
}

// Release is one version of a project with its files.
type Release struct {
	Project     string    `json:"project"`
	Version     string    `json:"version"`
	Files       []File    `json:"files"`
	UploadedAt  time.Time `json:"uploaded_at"`
	RoleVersion int64     `json:"role_version"`
	Published   bool      `json:"published"`
	Yanked      bool      `json:"yanked"`
	// YankReason is the reason the published role's custom data gives for a yank, if any.
	YankReason string `json:"yank_reason,omitempty"`
}

// ReleaseList is a project's releases, newest upload first.
type ReleaseList struct {
	Project  string    `json:"project"`
	Releases []Release `json:"releases"`
}

// SubmitResult answers a project creation or a project role submission.
type SubmitResult struct {
	Project     string `json:"project"`
	RoleVersion int64  `json:"role_version"`
	// Status is "published" once a snapshot includes the role version, "staged" if the
	// wait ended first, "pending" if it is a proposal that needs more maintainer
	// signatures (Signatures of Threshold so far).
	Status           string `json:"status"`
	SnapshotVersion  int64  `json:"snapshot_version,omitempty"`
	TimestampVersion int64  `json:"timestamp_version,omitempty"`
	Signatures       int    `json:"signatures,omitempty"`
	Threshold        int    `json:"threshold,omitempty"`
}

// Proposal is a project role version or a maintainer change waiting for co-signers.
type Proposal struct {
	Project string `json:"project"`
	// Kind is "role" (a project role version) or "maintainers" (a maintainer change).
	Kind    string `json:"kind"`
	Version int64  `json:"version"`
	// ProposedBy is the key ID of the first signer; SignedBy every key ID that has signed.
	ProposedBy string    `json:"proposed_by"`
	SignedBy   []string  `json:"signed_by"`
	Threshold  int       `json:"threshold"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Metadata is the role version (or change document) with the signatures so far:
	// co-signers sign the canonical JSON of its "signed" value.
	Metadata []byte `json:"metadata"`
}

// ProposalList is a project's open proposals.
type ProposalList struct {
	Project   string     `json:"project"`
	Proposals []Proposal `json:"proposals"`
}

// Proposal kinds.
const (
	KindRole        = "role"
	KindMaintainers = "maintainers"
)

// MaintainerChange is the "signed" value of a maintainer change document: the complete new
// set of maintainer keys and threshold of a project, version = the project's delegation
// version + 1, signed by a threshold of the current maintainers.
type MaintainerChange struct {
	Type      string         `json:"_type"` // "cairn-maintainers"
	Project   string         `json:"project"`
	Version   int64          `json:"version"`
	Keys      map[string]Key `json:"keys"`
	Threshold int            `json:"threshold"`
	Expires   time.Time      `json:"expires"`
}

// MaintainerChangeType is the _type of a maintainer change document.
const MaintainerChangeType = "cairn-maintainers"

// CoSignRequest adds one signature to a proposal.
type CoSignRequest struct {
	KeyID string `json:"keyid"`
	// Sig is the hex signature over the canonical JSON of the proposal's "signed" value.
	Sig string `json:"sig"`
}

// Submission statuses.
const (
	StatusStaged    = "staged"
	StatusPublished = "published"
	StatusPending   = "pending"
)

// BlobResult answers a blob upload.
type BlobResult struct {
	Digest  string `json:"digest"`
	Size    int64  `json:"size"`
	Created bool   `json:"created"`
}

// LogEntry is one entry of the hash-chained audit log. Hash is SHA-256 over PrevHash and
// the length-prefixed fields seq, action, role, version, length, sha256, snapshot and time
// (RFC 3339, UTC, microseconds); tufrepo.AuditHash is the reference.
type LogEntry struct {
	Seq      int64     `json:"seq"`
	Action   string    `json:"action"`
	Role     string    `json:"role"`
	Version  int64     `json:"version"`
	Length   int64     `json:"length"`
	SHA256   string    `json:"sha256"`
	Snapshot int64     `json:"snapshot"`
	Time     time.Time `json:"time"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
}

// Audit log actions.
const (
	ActionAccepted = "accepted" // metadata signed by someone else (maintainers, admins), verified and stored
	ActionSigned   = "signed"   // metadata the server signed with an online key
)

// LogPage is one page of the audit log, oldest first.
type LogPage struct {
	Entries []LogEntry `json:"entries"`
	Next    string     `json:"next,omitempty"`
}

// RoleExpiry is the published state of one top-level or delegating role.
type RoleExpiry struct {
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	// SignedBy is "offline" (admins re-sign it) or "online" (the server re-signs it).
	SignedBy string `json:"signed_by"`
	// Warning is set when the role expires soon: within 30 days for an offline role (the
	// admins must re-sign it), within a quarter of its lifetime for an online role (the
	// publisher is failing).
	Warning string `json:"warning,omitempty"`
}

// RepositoryStatus is the body of GET /api/v1/status.
type RepositoryStatus struct {
	Roles []RoleExpiry `json:"roles"`
}

// Health is the body of /readyz.
type Health struct {
	// Status is "ok", "degraded" (publisher or an online signer failing) or "unavailable".
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// RawJSON is used where exact bytes must be kept.
type RawJSON = json.RawMessage

// ClaimProject is a project the next version of claimed may or must delegate to, with the
// keys and threshold the delegation must carry.
type ClaimProject struct {
	Name              string         `json:"name"`
	Keys              map[string]Key `json:"keys"`
	Threshold         int            `json:"threshold"`
	DelegationVersion int64          `json:"delegation_version"`
	// Claimed projects must stay in claimed; the others (recently-claimed) may be moved in.
	Claimed bool `json:"claimed"`
	// Change is set when the keys come from maintainer changes queued for the admins;
	// Changes are those signed change documents, oldest first, so admins can check
	// offline that the maintainers signed each (the first against the keys in claimed).
	Change  bool     `json:"change"`
	Changes [][]byte `json:"changes,omitempty"`
	// Node is the node of the claimed or recently-claimed tree that delegates it now.
	Node string `json:"node,omitempty"`
}

// ClaimNode is a node of the claimed tree: the top ("claimed", prefix "") or a shard.
type ClaimNode struct {
	Role    string `json:"role"`
	Prefix  string `json:"prefix"`
	Version int64  `json:"version"` // latest, staged or published
}

// ClaimedUpload carries new versions of nodes of the claimed tree, signed offline by the
// admins: role → exact bytes (base64 in JSON).
type ClaimedUpload struct {
	Nodes map[string][]byte `json:"nodes"`
}

// ClaimQueue is what waits for the admins' next offline signing of claimed.
type ClaimQueue struct {
	// ClaimedVersion is the latest version of claimed; the next must be one more.
	ClaimedVersion int64 `json:"claimed_version"`
	// Claimed is that version's metadata (base64), to build the next one from.
	Claimed []byte `json:"claimed"`
	// Projects are the recently-claimed projects that may be claimed and the claimed
	// projects with queued maintainer changes.
	Projects []ClaimProject `json:"projects"`
	// Nodes are the nodes of the claimed tree, with their latest versions.
	Nodes []ClaimNode `json:"nodes"`
}

// TopLevelUpdate is what admins upload to rotate root or re-sign targets: the next root,
// the next targets, or both (both when root changes the targets keys, so that clients
// never see a root whose targets they cannot verify). Exact bytes, base64 in JSON.
type TopLevelUpdate struct {
	Root    []byte `json:"root,omitempty"`
	Targets []byte `json:"targets,omitempty"`
}

// TopLevelResult answers a TopLevelUpdate.
type TopLevelResult struct {
	RootVersion     int64  `json:"root_version,omitempty"`
	TargetsVersion  int64  `json:"targets_version,omitempty"`
	Status          string `json:"status"`
	SnapshotVersion int64  `json:"snapshot_version,omitempty"`
}

// ClaimResult answers an upload of claimed.
type ClaimResult struct {
	// Version is the new version of the claimed top (0 when the upload leaves it as it is);
	// Nodes the new version of every uploaded node.
	Version         int64            `json:"version"`
	Nodes           map[string]int64 `json:"nodes"`
	Moved           []string         `json:"moved"`
	Status          string           `json:"status"`
	SnapshotVersion int64            `json:"snapshot_version,omitempty"`
}

// MerkleProof is GET /api/v1/merkle/{timestamp}/{role}: the leaf of role in the Merkle
// snapshot that timestamp version commits to (its "x-cairn-merkle" field), and the RFC
// 6962 inclusion proof of that leaf. A client recomputes the root from these and the
// timestamp it verified; nothing here is trusted on its own.
type MerkleProof struct {
	Timestamp int64  `json:"timestamp"`
	Role      string `json:"role"`
	Version   int64  `json:"version"`
	Length    int64  `json:"length"`
	SHA256    string `json:"sha256"`
	Index     uint64 `json:"index"`
	Size      uint64 `json:"size"`
	// Hashes are the proof's node hashes (hex), leaf to root.
	Hashes []string `json:"hashes"`
}
