package tufrepo

import (
	"context"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The repository's own targets: files the server publishes for clients through TUF, listed
// by the top recently-claimed node (online key) under the reserved first component "_cairn"
// (no project name starts with '_', so no project delegation can match them; targets
// delegates "*/*/*" to claimed, whose nodes only delegate "<prefix>*/*/*" patterns of
// project names, and then to recently-claimed, whose top node lists them). Today that is
// the Sigstore trusted root attestations are verified against (issue #12).

// OwnTargetPrefix is the first path component of the repository's own targets.
const OwnTargetPrefix = "_cairn"

// SigstoreTrustedRootTarget is the target path of the repository's Sigstore trusted root.
const SigstoreTrustedRootTarget = OwnTargetPrefix + "/sigstore/trusted_root.json"

// OwnTargetsTx is implemented by publish transactions that know the repository's own
// targets; the publisher lists them in the top recently-claimed node whenever it signs it.
// A store that does not implement it publishes none.
type OwnTargetsTx interface {
	// OwnTargets returns the current own target files by path.
	OwnTargets(ctx context.Context) (map[string]*metadata.TargetFiles, error)
}

// ownTargets returns the own targets of tx, if it has any.
func ownTargets(ctx context.Context, tx PublishTx) (map[string]*metadata.TargetFiles, error) {
	if o, ok := tx.(OwnTargetsTx); ok {
		return o.OwnTargets(ctx)
	}
	return nil, nil
}

// OwnTargetFile describes bytes published at path: length and sha256 only (DESIGN.md:
// one hash per target).
func OwnTargetFile(path string, raw []byte) (*metadata.TargetFiles, error) {
	return metadata.TargetFile().FromBytes(path, raw, "sha256")
}
