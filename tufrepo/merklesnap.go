package tufrepo

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/tufrepo/merkle"
)

// MerkleLeaf is one leaf of the Merkle snapshot as stored: its index in the tree (the
// order in which roles first appeared in the audit log) and what it commits to.
type MerkleLeaf struct {
	Index uint64
	merkle.Leaf
}

// InMerkleTree reports whether role has a leaf: every role the classic snapshot lists,
// that is every role but root, timestamp and snapshot.
func InMerkleTree(role string) bool {
	return role != RoleRoot && role != RoleTimestamp && role != RoleSnapshot
}

// MerkleLeafOf is the leaf of a role version with bytes whose sha256 is sum.
func MerkleLeafOf(role string, version, length int64, sum []byte) (merkle.Leaf, error) {
	l := merkle.Leaf{Role: role, Version: version, Length: length}
	if len(sum) != sha256.Size {
		return l, fmt.Errorf("merkle leaf of %s version %d: sha256 of %d bytes", role, version, len(sum))
	}
	copy(l.SHA256[:], sum)
	return l, nil
}

// merkleState is the publisher's copy of the Merkle snapshot at its index's version.
type merkleState struct {
	tree  *merkle.Tree
	index map[string]uint64 // role → leaf index
}

// BuildMerkleTree builds the tree of version from stored leaves, which must have the
// indices 0…n-1 in order. It returns the role → index map as well.
func BuildMerkleTree(version int64, leaves []MerkleLeaf) (*merkle.Tree, map[string]uint64, error) {
	hs := make([]merkle.Hash, len(leaves))
	idx := make(map[string]uint64, len(leaves))
	for i, l := range leaves {
		if l.Index != uint64(i) {
			return nil, nil, fmt.Errorf("merkle leaves: index %d found where %d was expected (leaves must be numbered from 0 without gaps)", l.Index, i)
		}
		if _, dup := idx[l.Role]; dup {
			return nil, nil, fmt.Errorf("merkle leaves: role %q has two leaves", l.Role)
		}
		h, err := l.Hash()
		if err != nil {
			return nil, nil, err
		}
		hs[i], idx[l.Role] = h, uint64(i)
	}
	return merkle.Build(version, hs), idx, nil
}

// leafBatch collects the leaves one publish changes, in audit-log order, so that a new
// role's index is the order of its first audit entry (what an auditor replaying the log
// rebuilds).
type leafBatch struct {
	st   *merkleState
	rows []MerkleLeaf
	pos  map[string]int // role → position in rows
	next uint64         // next new leaf index
}

func newLeafBatch(st *merkleState) *leafBatch {
	return &leafBatch{st: st, pos: map[string]int{}, next: st.tree.Size()}
}

// set records the version of role that this publish lists; a later call for the same role
// wins, as in the snapshot.
func (b *leafBatch) set(role string, version, length int64, sum []byte) error {
	if !InMerkleTree(role) {
		return nil
	}
	l, err := MerkleLeafOf(role, version, length, sum)
	if err != nil {
		return err
	}
	if i, ok := b.pos[role]; ok {
		b.rows[i].Leaf = l
		return nil
	}
	i, ok := b.st.index[role]
	if !ok {
		i = b.next
		b.next++
	}
	b.pos[role] = len(b.rows)
	b.rows = append(b.rows, MerkleLeaf{Index: i, Leaf: l})
	return nil
}

// apply moves the tree to version with the batch. Afterwards the state is that of the new
// version; the publisher drops it if the transaction fails.
func (b *leafBatch) apply(version int64, now time.Time) error {
	ch := make([]merkle.Change, 0, len(b.rows))
	for _, r := range b.rows {
		h, err := r.Hash()
		if err != nil {
			return err
		}
		ch = append(ch, merkle.Change{Index: r.Index, Leaf: h})
	}
	// Appends must come in index order; updates may come in any order.
	sortChanges(ch, b.st.tree.Size())
	if err := b.st.tree.Apply(version, ch, now); err != nil {
		return err
	}
	for _, r := range b.rows {
		b.st.index[r.Role] = r.Index
	}
	// The publisher only needs the newest tree: serving older ones is the server's job.
	b.st.tree.Prune(merkle.Limits{}, now)
	return nil
}

func sortChanges(ch []merkle.Change, size uint64) {
	// Stable partition: updates (index < size) first, then appends by index.
	var upd, app []merkle.Change
	for _, c := range ch {
		if c.Index < size {
			upd = append(upd, c)
		} else {
			app = append(app, c)
		}
	}
	for i := 1; i < len(app); i++ {
		for j := i; j > 0 && app[j].Index < app[j-1].Index; j-- {
			app[j], app[j-1] = app[j-1], app[j]
		}
	}
	copy(ch, upd)
	copy(ch[len(upd):], app)
}

// InitialMerkleLeaves are the leaves of a new repository, in the order store.Bootstrap
// logs them: targets, claimed, recently-claimed.
func InitialMerkleLeaves(off *OfflineMetadata, rcRaw []byte) ([]MerkleLeaf, error) {
	var out []MerkleLeaf
	for i, m := range []struct {
		role string
		raw  []byte
	}{{RoleTargets, off.Targets}, {RoleClaimed, off.Claimed}, {RoleRecentlyClaimed, rcRaw}} {
		sum := sha256.Sum256(m.raw)
		l, err := MerkleLeafOf(m.role, 1, int64(len(m.raw)), sum[:])
		if err != nil {
			return nil, err
		}
		out = append(out, MerkleLeaf{Index: uint64(i), Leaf: l})
	}
	return out, nil
}
