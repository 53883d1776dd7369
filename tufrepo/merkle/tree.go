package merkle

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Tree is an RFC 6962 tree kept as every perfect subtree's hash, level by level
// (levels[0] are the leaf hashes, levels[l][i] covers leaves [i·2^l, (i+1)·2^l)), about
// 2·n hashes: 64 MB at a million leaves. Changing k leaves rehashes k·log2(n) nodes.
//
// It also keeps the trees of recent versions, so proofs can be served for a timestamp
// that is no longer the newest: each Apply records the old value of every node it
// overwrote (an undo record), and a node of an older version is read through the records
// of the versions after it. Records are dropped by Prune (oldest first) under the limits
// given, so memory stays bounded by the tree plus Limits.MaxUndoNodes entries.
//
// A Tree is not safe for concurrent use.
type Tree struct {
	levels  [][]Hash
	size    uint64
	version int64
	undo    []undoRec // oldest first; undo[i] leads from undo[i].prev to undo[i].version
	nodes   int       // entries in all undo records
}

type undoRec struct {
	version int64
	prev    int64  // the version before it (usually version-1; more after a jump forward)
	size    uint64 // the tree size of prev
	old     map[compact.NodeID]Hash
	at      time.Time // when prev stopped being the newest
}

// Limits bound what a Tree keeps of older versions.
type Limits struct {
	// Keep is how long a version stays provable after a newer one replaced it.
	Keep time.Duration
	// MaxVersions and MaxUndoNodes bound the number of older versions and the node
	// hashes kept for them, whatever Keep says.
	MaxVersions  int
	MaxUndoNodes int
}

// ErrNotKept is returned for a version the tree no longer (or never) held.
var ErrNotKept = errors.New("merkle tree version not kept")

// Build returns the tree of version over the leaf hashes, in index order.
func Build(version int64, leaves []Hash) *Tree {
	t := &Tree{version: version, size: uint64(len(leaves))}
	t.levels = append(t.levels, append(make([]Hash, 0, len(leaves)), leaves...))
	for l := 0; len(t.levels[l]) > 1; l++ {
		below := t.levels[l]
		up := make([]Hash, len(below)/2)
		for i := range up {
			up[i] = hashChildren(below[2*i], below[2*i+1])
		}
		t.levels = append(t.levels, up)
	}
	return t
}

func hashChildren(l, r Hash) Hash { return Hash(rfc6962.DefaultHasher.HashChildren(l[:], r[:])) }

// Version is the tree's newest version.
func (t *Tree) Version() int64 { return t.version }

// Size is the number of leaves of the newest version.
func (t *Tree) Size() uint64 { return t.size }

// Oldest is the oldest version the tree can still prove.
func (t *Tree) Oldest() int64 {
	if len(t.undo) == 0 {
		return t.version
	}
	return t.undo[0].prev
}

// Change sets the leaf at Index: an existing leaf, or the next one (Index == size).
type Change struct {
	Index uint64
	Leaf  Hash
}

// Apply moves the tree to version (above the current one: tree versions are snapshot
// versions, consecutive except after a publish that jumps forward, tufrepo's
// PublishForward) by the changes, in order, and
// records what it overwrote so the previous version stays provable; now is when the
// previous version stopped being the newest. Appended leaves must come in index order.
// On error the tree is unchanged.
func (t *Tree) Apply(version int64, changes []Change, now time.Time) error {
	if version <= t.version {
		return fmt.Errorf("merkle tree: version %d does not follow %d", version, t.version)
	}
	next := t.size
	for _, c := range changes {
		switch {
		case c.Index < t.size:
		case c.Index == next:
			next++
		case c.Index < next:
		default:
			return fmt.Errorf("merkle tree version %d: leaf %d would leave a gap after %d leaves", version, c.Index, next)
		}
	}
	rec := undoRec{version: version, prev: t.version, size: t.size, old: make(map[compact.NodeID]Hash, len(changes)*(len(t.levels)+1)), at: now}
	oldLen := make([]int, len(t.levels))
	for l := range t.levels {
		oldLen[l] = len(t.levels[l])
	}
	for _, c := range changes {
		t.set(c.Index, c.Leaf, rec.old, oldLen)
	}
	t.undo = append(t.undo, rec)
	t.nodes += len(rec.old)
	t.version = version
	return nil
}

// set writes leaf i and rehashes its ancestors, recording the old value of every node
// that existed before this Apply (oldLen) into old.
func (t *Tree) set(i uint64, h Hash, old map[compact.NodeID]Hash, oldLen []int) {
	if i == t.size {
		t.levels[0] = append(t.levels[0], h)
		t.size++
	} else {
		t.save(0, i, old, oldLen)
		t.levels[0][i] = h
	}
	for l := 0; ; l++ {
		p := i >> 1
		if uint64(len(t.levels[l])) < 2*p+2 {
			return // the parent is not a perfect subtree (yet)
		}
		v := hashChildren(t.levels[l][2*p], t.levels[l][2*p+1])
		if l+1 == len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		if uint64(len(t.levels[l+1])) == p {
			t.levels[l+1] = append(t.levels[l+1], v)
		} else {
			t.save(uint(l+1), p, old, oldLen)
			t.levels[l+1][p] = v
		}
		i = p
	}
}

func (t *Tree) save(level uint, i uint64, old map[compact.NodeID]Hash, oldLen []int) {
	if int(level) >= len(oldLen) || i >= uint64(oldLen[level]) {
		return // created by this Apply: older versions never read it
	}
	id := compact.NewNodeID(level, i)
	if _, ok := old[id]; !ok {
		old[id] = t.levels[level][i]
	}
}

// at returns the view of version v: its size and the records that lead back to it.
func (t *Tree) at(v int64) (uint64, []undoRec, error) {
	if v == t.version {
		return t.size, nil, nil
	}
	// The record that leads away from v; versions skipped by a jump never existed.
	i, ok := slices.BinarySearchFunc(t.undo, v, func(r undoRec, v int64) int { return cmp.Compare(r.prev, v) })
	if !ok {
		return 0, nil, fmt.Errorf("%w: version %d (kept: %d to %d)", ErrNotKept, v, t.Oldest(), t.version)
	}
	return t.undo[i].size, t.undo[i:], nil
}

func (t *Tree) node(id compact.NodeID, recs []undoRec) Hash {
	for _, r := range recs {
		if h, ok := r.old[id]; ok {
			return h
		}
	}
	return t.levels[id.Level][id.Index]
}

// RootAt returns the root of version v.
func (t *Tree) RootAt(v int64) (Root, error) {
	size, recs, err := t.at(v)
	if err != nil {
		return Root{}, err
	}
	if size == 0 {
		return Root{Hash: Hash(rfc6962.DefaultHasher.EmptyRoot())}, nil
	}
	ids := compact.RangeNodes(0, size, nil)
	h := t.node(ids[len(ids)-1], recs)
	for i := len(ids) - 2; i >= 0; i-- {
		h = hashChildren(t.node(ids[i], recs), h)
	}
	return Root{Hash: h, Size: size}, nil
}

// Root returns the root of the newest version.
func (t *Tree) Root() Root {
	r, _ := t.RootAt(t.version) // the newest version is always kept
	return r
}

// LeafAt returns leaf index's hash in version v.
func (t *Tree) LeafAt(v int64, index uint64) (Hash, error) {
	size, recs, err := t.at(v)
	if err != nil {
		return Hash{}, err
	}
	if index >= size {
		return Hash{}, fmt.Errorf("merkle tree version %d has %d leaves, not %d", v, size, index+1)
	}
	return t.node(compact.NewNodeID(0, index), recs), nil
}

// ProofAt returns the size of version v and the inclusion proof of leaf index in it.
func (t *Tree) ProofAt(v int64, index uint64) (uint64, []Hash, error) {
	size, recs, err := t.at(v)
	if err != nil {
		return 0, nil, err
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return 0, nil, fmt.Errorf("merkle tree version %d: %w", v, err)
	}
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h := t.node(id, recs)
		hs[i] = h[:]
	}
	hs, err = nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return 0, nil, err
	}
	out := make([]Hash, len(hs))
	for i := range hs {
		out[i] = Hash(hs[i])
	}
	return size, out, nil
}

// Prune drops the oldest versions beyond lim at now. The newest version is always kept.
func (t *Tree) Prune(lim Limits, now time.Time) {
	drop := 0
	for drop < len(t.undo) {
		r := t.undo[drop]
		kept := len(t.undo) - drop
		if kept <= lim.MaxVersions && t.nodes <= lim.MaxUndoNodes && now.Sub(r.at) < lim.Keep {
			break
		}
		t.nodes -= len(r.old)
		drop++
	}
	// Drop from the front without copying the kept records (one publish must not cost
	// O(versions kept)); clear the dropped ones so their maps can be collected.
	clear(t.undo[:drop])
	t.undo = t.undo[drop:]
}

// Kept is the number of older versions held and the node hashes kept for them.
func (t *Tree) Kept() (versions, nodes int) { return len(t.undo), t.nodes }
