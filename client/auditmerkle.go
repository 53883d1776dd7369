package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// MerkleAudit is what AuditMerkle found.
type MerkleAudit struct {
	// Trees counts the timestamps whose Merkle snapshot was rebuilt and matched;
	// WithoutTree those signed before the server made trees.
	Trees       int            `json:"trees"`
	WithoutTree int            `json:"without_tree"`
	Problems    []AuditProblem `json:"problems"`
}

// AuditMerkle is the auditor TAP 16 calls for. It replays the verified audit log (log,
// chain already checked), which records every role version each publish made with the
// sha256 and length of its bytes, and rebuilds each publish's Merkle snapshot as the
// server must have: a role keeps the leaf index of its first entry, new roles append. For
// every timestamp the log records it fetches the served bytes (checked against the log's
// hash) and compares the tree it signed with the rebuilt one; it also checks that, in the
// log, no role's version ever goes back, and that consecutive trees never shrink (a dropped
// role). A mismatch names the timestamp and, where the server still proves leaves of that
// tree, the role whose leaf differs.
func (a *API) AuditMerkle(ctx context.Context, log []api.LogEntry) (*MerkleAudit, error) {
	out := &MerkleAudit{Problems: []AuditProblem{}}
	problem := func(role string, version int64, code ExitCode, format string, args ...any) {
		out.Problems = append(out.Problems, AuditProblem{Role: role, Version: version, Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	var (
		leaves   []merkle.Leaf
		hashes   []merkle.Hash
		index    = map[string]int{}
		lastSize uint64
		lastTS   int64
	)
	for _, e := range log {
		if tufrepo.InMerkleTree(e.Role) {
			sum, err := hex.DecodeString(e.SHA256)
			if err != nil {
				return nil, &VerifyError{Code: ExitMalformed, Role: "audit log", Detail: fmt.Sprintf("entry %d has a malformed sha256", e.Seq)}
			}
			l, err := tufrepo.MerkleLeafOf(e.Role, e.Version, e.Length, sum)
			if err != nil {
				return nil, &VerifyError{Code: ExitMalformed, Role: "audit log", Detail: fmt.Sprintf("entry %d: %v", e.Seq, err)}
			}
			h, err := l.Hash()
			if err != nil {
				return nil, err
			}
			if i, ok := index[e.Role]; ok {
				if e.Version < leaves[i].Version {
					problem(e.Role, e.Version, ExitPolicy, "audit log entry %d publishes %s version %d after version %d (snapshot %d): a version went back", e.Seq, e.Role, e.Version, leaves[i].Version, e.Snapshot)
				}
				leaves[i], hashes[i] = l, h
			} else {
				index[e.Role] = len(leaves)
				leaves, hashes = append(leaves, l), append(hashes, h)
			}
			continue
		}
		if e.Role != tufrepo.RoleTimestamp || e.Action != api.ActionSigned {
			continue
		}
		// Entries of one publish come before its timestamp's: the tree here is the one the
		// timestamp must commit to.
		raw, err := a.metadataFile(ctx, strconv.FormatInt(e.Version, 10)+".timestamp.json")
		if err != nil {
			return nil, err
		}
		if raw == nil {
			problem(tufrepo.RoleTimestamp, e.Version, ExitPolicy, "the server does not serve %d.timestamp.json", e.Version)
			continue
		}
		if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != e.SHA256 {
			problem(tufrepo.RoleTimestamp, e.Version, ExitHashMismatch, "the served %d.timestamp.json has sha256 %x, the audit log records %s", e.Version, s, e.SHA256)
			continue
		}
		ts, err := metadata.Timestamp().FromBytes(raw)
		if err != nil {
			problem(tufrepo.RoleTimestamp, e.Version, ExitMalformed, "%d.timestamp.json does not parse: %v", e.Version, err)
			continue
		}
		field, ok := ts.Signed.UnrecognizedFields[merkle.FieldName]
		if !ok {
			if lastTS > 0 {
				problem(tufrepo.RoleTimestamp, e.Version, ExitPolicy, "timestamp %d has no Merkle snapshot, but timestamp %d had one", e.Version, lastTS)
			}
			out.WithoutTree++
			continue
		}
		signed, err := merkle.ParseField(field)
		if err != nil {
			problem(tufrepo.RoleTimestamp, e.Version, ExitMalformed, "timestamp %d: %v", e.Version, err)
			continue
		}
		if signed.Size < lastSize {
			problem(tufrepo.RoleTimestamp, e.Version, ExitPolicy, "the Merkle snapshot of timestamp %d has %d leaves, the one of timestamp %d had %d: a role was dropped", e.Version, signed.Size, lastTS, lastSize)
		}
		lastSize, lastTS = signed.Size, e.Version
		want := merkle.Build(e.Snapshot, hashes).Root()
		if want == signed {
			out.Trees++
			continue
		}
		detail := fmt.Sprintf("timestamp %d (snapshot %d) signs Merkle root %x over %d leaves; the audit log's role versions make %x over %d", e.Version, e.Snapshot, signed.Hash, signed.Size, want.Hash, want.Size)
		if role, got, ok := a.differingLeaf(ctx, e.Version, signed, leaves); ok {
			detail += fmt.Sprintf("; its leaf of %s is version %d where the log has version %d", role, got.Version, leaves[index[role]].Version)
			if got.Version < leaves[index[role]].Version {
				detail += " (a rollback)"
			}
		}
		problem(tufrepo.RoleTimestamp, e.Version, ExitHashMismatch, "%s", detail)
	}
	return out, nil
}

// maxLeafProbe bounds how many leaves AuditMerkle asks the server about to name the leaf
// that differs.
const maxLeafProbe = 4096

// differingLeaf asks the server for proofs of the tree timestamp ts signed and returns the
// first role whose proven leaf differs from the replayed one.
func (a *API) differingLeaf(ctx context.Context, ts int64, root merkle.Root, leaves []merkle.Leaf) (string, merkle.Leaf, bool) {
	if len(leaves) > maxLeafProbe {
		return "", merkle.Leaf{}, false
	}
	for _, want := range leaves {
		var p api.MerkleProof
		if _, err := a.do(ctx, request{method: "GET", url: a.endpoint(nil, "api", "v1", "merkle", strconv.FormatInt(ts, 10), want.Role), out: &p}); err != nil {
			continue
		}
		got := merkle.Leaf{Role: p.Role, Version: p.Version, Length: p.Length}
		sum, err := hex.DecodeString(p.SHA256)
		if err != nil || len(sum) != sha256.Size || p.Role != want.Role {
			continue
		}
		copy(got.SHA256[:], sum)
		hs := make([]merkle.Hash, 0, len(p.Hashes))
		for _, h := range p.Hashes {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != sha256.Size {
				break
			}
			hs = append(hs, merkle.Hash(b))
		}
		if merkle.VerifyInclusion(root, p.Index, got, hs) != nil {
			continue // only a proof that verifies says what the signed tree holds
		}
		if got != want {
			return want.Role, got, true
		}
	}
	return "", merkle.Leaf{}, false
}
