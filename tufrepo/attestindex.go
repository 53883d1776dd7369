package tufrepo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The attestation index (issue #12): for every release file that has attestations, the
// target "_cairn/attestations/<file sha256>.json" whose content is the sorted list of its
// bundles' sha256 (AttestationIndex). The targets are listed by online-signed index roles
// "_attestations.<xx>", one per first byte of the file digest (256 at most, created when
// their first attestation arrives), which the top recently-claimed node delegates with the
// pattern "_cairn/attestations/<xx>*". Snapshot lists the index roles like every other
// role, so a client that verified a snapshot knows the complete set of attestations as of
// that snapshot: a server that drops one from its REST list is caught by comparing the list
// with the index; dropping it from the index too needs the online key and is recorded in
// the audit and transparency logs (SECURITY.md "Attestations").

// AttestationIndexPrefix is the directory of index targets.
const AttestationIndexPrefix = OwnTargetPrefix + "/attestations/"

// AttestationIndexTarget is the index target path of a file (sha256 hex).
func AttestationIndexTarget(fileSHA256 string) string {
	return AttestationIndexPrefix + fileSHA256 + ".json"
}

// AttestationShard is the shard (two hex digits) of a file digest.
func AttestationShard(fileSHA256 string) string { return fileSHA256[:2] }

// AttestationShardRole is the index role of a shard.
func AttestationShardRole(shard string) string { return "_attestations." + shard }

// AttestationIndex is the content of an index target. Its encoding is canonical JSON, so
// server and client compute the same bytes from the same set.
type AttestationIndex struct {
	FileSHA256 string   `json:"file_sha256"`
	Bundles    []string `json:"bundles"` // sha256 hex of each bundle, sorted
}

// EncodeAttestationIndex returns the index bytes of a file's bundle digests.
func EncodeAttestationIndex(fileSHA256 string, bundles []string) ([]byte, error) {
	b := slices.Clone(bundles)
	slices.Sort(b)
	if b == nil {
		b = []string{}
	}
	raw, err := json.Marshal(AttestationIndex{FileSHA256: fileSHA256, Bundles: b})
	if err != nil {
		return nil, fmt.Errorf("encoding the attestation index of %s: %w", fileSHA256, err)
	}
	return raw, nil
}

// AttestationShardState is one index role as the store knows it.
type AttestationShardState struct {
	Shard   string
	Version int64     // 0: never signed
	Expires time.Time // of the newest version
	Dirty   bool      // attestations arrived since it was signed
	Wanted  int64     // the post counter read; signing records it (CleanAttestationShards)
}

// AttestationIndexTx is implemented by publish transactions of stores that keep
// attestations. Whenever the publisher signs the top recently-claimed node it delegates
// every shard and signs the shards that are dirty, due, new, or (a forward publish) all.
type AttestationIndexTx interface {
	// AttestationShards returns every shard that has attestations.
	AttestationShards(ctx context.Context) ([]AttestationShardState, error)
	// AttestationShardTargets returns the index targets of one shard (and keeps each index's
	// bytes so that they are served under their hash).
	AttestationShardTargets(ctx context.Context, shard string) (map[string]*metadata.TargetFiles, error)
	// CleanAttestationShards records that the shards were signed as of the Wanted counter
	// read; attestations posted since stay due.
	CleanAttestationShards(ctx context.Context, signed []AttestationShardState) error
	// AttestationShardsDue reports whether any shard has attestations not yet signed; the
	// publisher then signs the top recently-claimed node (and so the shards).
	AttestationShardsDue(ctx context.Context) (bool, error)
}

// attestationsDue reports whether tx's store has attestation shards to sign.
func attestationsDue(ctx context.Context, tx PublishTx) (bool, error) {
	if at, ok := tx.(AttestationIndexTx); ok {
		return at.AttestationShardsDue(ctx)
	}
	return false, nil
}

// attestationDelegations returns the top node's delegations to the index roles.
func attestationDelegations(shards []AttestationShardState, keys ShardKeys) []metadata.DelegatedRole {
	ids := slices.Sorted(slices.Values(keys.KeyIDs))
	out := make([]metadata.DelegatedRole, 0, len(shards))
	for _, s := range shards {
		out = append(out, metadata.DelegatedRole{
			Name: AttestationShardRole(s.Shard), KeyIDs: ids, Threshold: keys.Threshold, Terminating: true,
			Paths: []string{AttestationIndexPrefix + s.Shard + "*"},
		})
	}
	return out
}

// BuildAttestationShard returns the canonical signed bytes of an index role.
func BuildAttestationShard(version int64, expires time.Time, targets map[string]*metadata.TargetFiles) ([]byte, error) {
	md := metadata.Targets(expires.UTC().Truncate(time.Second))
	md.Signed.SpecVersion = SpecVersion
	md.Signed.Version = version
	for p, tf := range targets {
		if !strings.HasPrefix(p, AttestationIndexPrefix) {
			return nil, fmt.Errorf("index target %q is outside %s", p, AttestationIndexPrefix)
		}
		md.Signed.Targets[p] = tf
	}
	return Canonical(md.Signed)
}

// signAttestationShards signs the index roles that need it, with the recently-claimed key,
// and returns the delegations the top node must carry. Called only when the top node is
// signed; see AttestationIndexTx for which shards are signed.
func (p *Publisher) signAttestationShards(ctx context.Context, tx PublishTx, now time.Time, floor int64, sign func(role string, v int64, raw []byte, exp time.Time) ([]byte, error)) ([]metadata.DelegatedRole, error) {
	at, ok := tx.(AttestationIndexTx)
	if !ok {
		return nil, nil
	}
	shards, err := at.AttestationShards(ctx)
	if err != nil {
		return nil, err
	}
	exp := now.Add(RecentlyClaimedExpiry).Truncate(time.Second)
	var cleaned []AttestationShardState
	for _, s := range shards {
		if !(s.Dirty || s.Version == 0 || floor > 0 || due(now, s.Expires, RecentlyClaimedExpiry)) {
			continue
		}
		targets, err := at.AttestationShardTargets(ctx, s.Shard)
		if err != nil {
			return nil, err
		}
		v := max(s.Version+1, floor)
		signed, err := BuildAttestationShard(v, exp, targets)
		if err != nil {
			return nil, err
		}
		raw, err := signIn(ctx, tx, signed, p.Signers.RecentlyClaimed)
		if err != nil {
			return nil, err
		}
		role := AttestationShardRole(s.Shard)
		if _, err := sign(role, v, raw, exp); err != nil {
			return nil, err
		}
		p.index.Set(role, v, int64(len(raw)))
		cleaned = append(cleaned, s)
	}
	if err := at.CleanAttestationShards(ctx, cleaned); err != nil {
		return nil, err
	}
	return attestationDelegations(shards, p.Signers.rcKeys()), nil
}

// IsAttestationShardRole reports whether role is an attestation index role.
func IsAttestationShardRole(role string) bool {
	s, ok := strings.CutPrefix(role, "_attestations.")
	return ok && len(s) == 2 && strings.Trim(s, "0123456789abcdef") == ""
}

// SignedWithRecentlyClaimedKey reports whether the server signs role with the online
// recently-claimed key: the nodes of the recently-claimed tree and the attestation index
// roles. Audits, the transparency log and the doctor treat them alike.
func SignedWithRecentlyClaimedKey(role string) bool {
	tree, _, _ := ParseShardRole(role)
	return tree == RoleRecentlyClaimed || IsAttestationShardRole(role)
}
