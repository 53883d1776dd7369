package oci

import (
	"context"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
)

// Store is what the registry needs of the database: its repositories, manifests, tags,
// blob links and upload sessions, the published releases and attestations it serves as
// artifacts, and token checks. *store.DB implements it; the registry depends on nothing
// else of the store's.
type Store interface {
	// Ping checks the database, for the fault reporter's dependency checks.
	Ping(ctx context.Context) error

	// Tokens.
	Authenticate(ctx context.Context, presented string) (*store.Token, error)
	TokenByID(ctx context.Context, id string) (*store.Token, error)
	OCITokenKey(ctx context.Context) ([]byte, error)

	// Repositories, manifests and tags.
	OCIRepoExists(ctx context.Context, repo string) (bool, error)
	OCIGetManifest(ctx context.Context, repo, ref string, byDigest bool) (*store.OCIManifest, error)
	OCIPutManifest(ctx context.Context, m store.OCIManifestPut) error
	OCIDeleteManifest(ctx context.Context, repo, digest string) (bool, error)
	OCIDeleteTag(ctx context.Context, repo, tag string) (bool, error)
	OCIListTags(ctx context.Context, repo, last string, n int) ([]string, bool, error)
	OCIReferrers(ctx context.Context, repo, digest, artifactType string) ([]store.OCIReferrer, error)

	// Blob links of a repository.
	OCIBlobInRepo(ctx context.Context, repo, digest string) (int64, bool, error)
	OCILinkBlob(ctx context.Context, repo, digest string, size int64, store func() error) error
	OCIMountBlob(ctx context.Context, repo, from, digest string, exists func() bool) (int64, bool, error)
	OCIUnlinkBlob(ctx context.Context, repo, digest string) (bool, error)

	// Upload sessions.
	OCICreateUpload(ctx context.Context, repo string, create func(id string) error) (string, error)
	OCIGetUpload(ctx context.Context, repo, id string, ttl time.Duration) (*store.OCIUpload, error)
	OCISetUploadSize(ctx context.Context, id string, prev, size int64) (bool, error)
	OCIFinishUpload(ctx context.Context, repo, id string, prev int64, digest string, size int64, store func() error) (bool, error)
	OCIDeleteUpload(ctx context.Context, repo, id string) (bool, error)

	// Published releases and their attestations, served as read-only artifacts.
	PublishedReleaseFiles(ctx context.Context, project, tag string) ([]store.PublishedReleaseFile, error)
	PublishedReleaseFileSize(ctx context.Context, project, sha256Hex string) (int64, bool, error)
	CommittedAttestations(ctx context.Context, files []string) (map[string][]store.CommittedAttestation, error)
	AttestationBundle(ctx context.Context, fileSHA256, bundleSHA256 string) (api.Attestation, []byte, error)
	AttestationBundleFiles(ctx context.Context, project, bundleSHA256 string) ([]string, error)
}

var _ Store = (*store.DB)(nil)
