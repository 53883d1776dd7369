package tufrepo

import (
	"bytes"
	"context"
	"fmt"

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

// PublishedRoleTx is implemented by publish transactions that can read the bytes of a
// published role version. The publisher uses it to find a top recently-claimed node that
// a release without the repository's own content signed (ownContentMissing).
type PublishedRoleTx interface {
	RoleRaw(ctx context.Context, role string, version int64) ([]byte, error)
}

// ownContentMissing reports whether version of the top recently-claimed node lacks the
// repository's own targets or a delegation to a signed attestation index role. The top node
// is re-signed only when something marks it due, and in a rolling upgrade a replica of a
// release that predates this content may sign it: that version drops the trusted root
// target and the index delegations, and nothing would put them back until the node
// expired (docs/operations.md "Upgrades"). A version found complete is remembered, so the
// node is read once per version, under p.mu like the rest of the publisher's state.
func (p *Publisher) ownContentMissing(ctx context.Context, tx PublishTx, version int64) (bool, error) {
	rt, ok := tx.(PublishedRoleTx)
	if !ok || version == 0 || version == p.ownComplete {
		return false, nil
	}
	own, err := ownTargets(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("reading the repository's own targets: %w", err)
	}
	var signed []string
	if at, ok := tx.(AttestationIndexTx); ok {
		shards, err := at.AttestationShards(ctx)
		if err != nil {
			return false, err
		}
		for _, s := range shards {
			if s.Version > 0 {
				signed = append(signed, AttestationShardRole(s.Shard))
			}
		}
	}
	if len(own) == 0 && len(signed) == 0 {
		p.ownComplete = version
		return false, nil
	}
	role := ShardRole(RoleRecentlyClaimed, "")
	raw, err := rt.RoleRaw(ctx, role, version)
	if err != nil {
		return false, err
	}
	md, err := ParseTargetsStrict(raw, fmt.Sprintf("%s version %d", role, version))
	if err != nil {
		return false, err
	}
	for path, want := range own {
		got := md.MD.Signed.Targets[path]
		if got == nil || got.Length != want.Length || !bytes.Equal(got.Hashes["sha256"], want.Hashes["sha256"]) {
			return true, nil
		}
	}
	delegated := map[string]bool{}
	if d := md.MD.Signed.Delegations; d != nil {
		for _, r := range d.Roles {
			delegated[r.Name] = true
		}
	}
	for _, name := range signed {
		if !delegated[name] {
			return true, nil
		}
	}
	p.ownComplete = version
	return false, nil
}
