package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// What the server needs of the database, named by the handlers that use it, as oci.Store
// does for the registry. *store.DB implements all of them; New still takes it whole only to
// wire the packages that have their own view of it (the publisher's tufrepo.PublishStore,
// oci.Store, tlog.Store, the web UI).

// Store is every group at once: what Server's handlers and background work call.
type Store interface {
	ProjectStore
	TokenStore
	BlobRecords
	ClaimStore
	AttestationStore
	LogStore
	SearchStore
	metadataStore
	merkleStore

	// Ping checks the database (/readyz and the fault reporter).
	Ping(ctx context.Context) error
	// Listen calls fn for each notification on channels until ctx ends.
	Listen(ctx context.Context, log *slog.Logger, fn func(channel, payload string), channels ...string)
	// PruneSnapshots removes snapshot versions older than keep that no client needs.
	PruneSnapshots(ctx context.Context, keep time.Duration, now time.Time) (int, error)
}

// ProjectStore is what the project, co-signing and maintainer handlers need: the write
// path's transactions (whose policy is tufrepo's), the group-commit read, and the reads
// behind their answers.
type ProjectStore interface {
	tufrepo.ProjectStore
	UploadStateWithBlobs(ctx context.Context, project string, paths []string, sums [][]byte) (tufrepo.ProjectState, tufrepo.BlobSizes, error)
	GetProject(ctx context.Context, name string) (*api.Project, error)
	ListProjects(ctx context.Context, after string, limit int) ([]api.Project, error)
	Releases(ctx context.Context, project string) (*api.ReleaseList, error)
	RoleStatus(ctx context.Context, project string, version int64) (int64, error)
	MetadataStatus(ctx context.Context, project string, version int64) (int64, error)
	Proposals(ctx context.Context, project string, now time.Time) (*api.ProposalList, error)
	Heads(ctx context.Context) (snapshot, timestamp int64, err error)
}

// TokenStore checks bearer tokens.
type TokenStore interface {
	Authenticate(ctx context.Context, presented string) (*store.Token, error)
	// ForgetToken drops a token from the cache (it was revoked).
	ForgetToken(id string)
}

// BlobRecords is what the blob handlers record and look up.
type BlobRecords interface {
	BlobSize(ctx context.Context, sum string) (int64, bool, error)
	RecordBlobGrouped(ctx context.Context, sum string, size int64) (bool, error)
	PublishedTarget(ctx context.Context, path string) (*store.TargetFile, error)
}

// ClaimStore is what the admins' claim and top-level handlers need.
type ClaimStore interface {
	ClaimQueue(ctx context.Context, names []string) (*api.ClaimQueue, error)
	SubmitClaimed(ctx context.Context, nodes map[string][]byte, now time.Time) (*tufrepo.AcceptedClaim, error)
	SubmitTopLevel(ctx context.Context, up api.TopLevelUpdate, online tufrepo.Signers, now time.Time) (*store.StagedTopLevel, error)
}

// AttestationStore is what the attestation handlers need.
type AttestationStore interface {
	AddAttestation(ctx context.Context, a store.NewAttestation) (api.Attestation, error)
	AttestationBundle(ctx context.Context, fileSHA256, bundleSHA256 string) (api.Attestation, []byte, error)
	AttestationIndexBytes(ctx context.Context, fileSHA256, sha256Hex string) ([]byte, error)
	AttestationKeys(ctx context.Context, fileSHA256 string) ([]store.ProjectKeys, error)
	AttestationSummary(ctx context.Context, fileSHA256 string) (*api.AttestationSummary, error)
	Attestations(ctx context.Context, fileSHA256 string, after int64, limit int) ([]api.Attestation, error)
	SetSigstoreTrustedRoot(ctx context.Context, raw []byte) (changed bool, err error)
	SigstoreTrustedRootBytes(ctx context.Context, sha256Hex string) ([]byte, error)
}

// LogStore is what the audit log and transparency log handlers read.
type LogStore interface {
	AuditPage(ctx context.Context, after int64, limit int) ([]api.LogEntry, error)
	TlogBacklog(ctx context.Context) (int64, error)
	TlogEntries(ctx context.Context, after int64, limit int) ([]api.TransparencyLogEntry, error)
	TlogEntry(ctx context.Context, role string, version int64) (*api.TransparencyLogEntry, error)
}

// SearchStore answers the search handler.
type SearchStore interface {
	SearchFiles(ctx context.Context, q store.SearchQuery) ([]api.SearchFile, bool, error)
	SearchProjectsBy(ctx context.Context, q store.SearchQuery) ([]api.SearchProject, bool, error)
}

// metadataStore is what the metadata cache (and the static export) read.
type metadataStore interface {
	Heads(ctx context.Context) (snapshot, timestamp int64, err error)
	LatestPublishedVersion(ctx context.Context, role string) (int64, time.Time, error)
	PublishedMetadata(ctx context.Context, role string, version int64) (*store.Metadata, error)
}

// merkleStore is what the Merkle snapshot trees are built from.
type merkleStore interface {
	MerkleState(ctx context.Context) (int64, []tufrepo.MerkleLeaf, error)
	MerkleChanges(ctx context.Context, after, upto int64) ([]store.MerkleChange, error)
}

var _ Store = (*store.DB)(nil)
