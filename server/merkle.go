package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/go-chi/chi/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Bounds of what a replica keeps of older Merkle snapshots (DESIGN.md "Merkle snapshot").
// A client asks for proofs right after it fetched timestamp.json, so older trees only
// have to outlive caches and slow clients; the bounds keep memory fixed whatever the
// publish rate.
const (
	merkleMaxVersions  = 4096
	merkleMaxUndoNodes = 1 << 21 // ~2M node hashes, ~150 MB at most
	// merkleMaxCatchUp: a replica further behind than this reloads the whole tree.
	merkleMaxCatchUp = 1024
	// merkleTimestamps bounds the parsed timestamps kept.
	merkleTimestamps = 256
)

// merkleTrees is a replica's copy of the Merkle snapshot: the newest tree, the leaves'
// contents, and enough of the recent versions to prove leaves for any timestamp whose
// tree is kept. It follows the database version by version (store.MerkleChanges); every
// replica builds the same trees from the same rows, and every proof is checked against
// the root the timestamp signed before it is served.
type merkleTrees struct {
	db   merkleStore
	keep time.Duration
	now  func() time.Time

	update sync.Mutex // one loader at a time

	mu     sync.RWMutex
	tree   *merkle.Tree
	leaves []merkle.Leaf      // the newest version's leaf contents, by index
	index  map[string]uint64  // role → leaf index
	undo   []leafUndo         // the leaves each kept version overwrote, oldest first
	ts     map[int64]tsMerkle // parsed timestamps
}

type leafUndo struct {
	version int64
	old     map[uint64]merkle.Leaf // absent: the leaf was new in version
}

// tsMerkle is what a timestamp version says of the Merkle snapshot.
type tsMerkle struct {
	snapshot int64
	root     merkle.Root
	has      bool
}

func newMerkleTrees(db merkleStore, keep time.Duration, now func() time.Time) *merkleTrees {
	if keep <= 0 {
		keep = time.Hour
	}
	return &merkleTrees{db: db, keep: keep, now: now, ts: map[int64]tsMerkle{}}
}

func (m *merkleTrees) limits() merkle.Limits {
	return merkle.Limits{Keep: m.keep, MaxVersions: merkleMaxVersions, MaxUndoNodes: merkleMaxUndoNodes}
}

// follow brings the tree to version target (or the database's head, if newer on a
// reload).
func (m *merkleTrees) follow(ctx context.Context, target int64) error {
	m.update.Lock()
	defer m.update.Unlock()
	m.mu.RLock()
	cur := int64(-1)
	if m.tree != nil {
		cur = m.tree.Version()
	}
	m.mu.RUnlock()
	switch {
	case cur >= target:
		return nil
	case cur < 0 || target-cur > merkleMaxCatchUp:
		return m.reload(ctx)
	}
	changes, err := m.db.MerkleChanges(ctx, cur, target)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for v := cur + 1; v <= target; v++ {
		var ch []merkle.Change
		undo := leafUndo{version: v, old: map[uint64]merkle.Leaf{}}
		size := uint64(len(m.leaves))
		for len(changes) > 0 && changes[0].Snapshot == v {
			c := changes[0]
			changes = changes[1:]
			h, err := c.Hash()
			if err != nil {
				return err
			}
			switch {
			case c.Index < size:
				if m.leaves[c.Index].Role != c.Role {
					return fmt.Errorf("merkle snapshot version %d: leaf %d is %q, the database says %q", v, c.Index, m.leaves[c.Index].Role, c.Role)
				}
				if _, ok := undo.old[c.Index]; !ok {
					undo.old[c.Index] = m.leaves[c.Index]
				}
				m.leaves[c.Index] = c.Leaf
			case c.Index == uint64(len(m.leaves)):
				m.leaves = append(m.leaves, c.Leaf)
				m.index[c.Role] = c.Index
			case c.Index > uint64(len(m.leaves)):
				return fmt.Errorf("merkle snapshot version %d: leaf %d after %d leaves", v, c.Index, len(m.leaves))
			default:
				m.leaves[c.Index] = c.Leaf // new in this version, set again
			}
			ch = append(ch, merkle.Change{Index: c.Index, Leaf: h})
		}
		if err := m.tree.Apply(v, ch, m.now()); err != nil {
			m.tree = nil // rebuilt from the database on the next request
			return err
		}
		m.undo = append(m.undo, undo)
	}
	m.prune()
	return nil
}

// followHead is follow for the head this replica serves: a head older than the tree
// means the database went back (a restore), whose history may differ from the one the
// tree followed, so the tree is rebuilt from it.
func (m *merkleTrees) followHead(ctx context.Context, head int64) error {
	m.mu.RLock()
	back := m.tree != nil && head < m.tree.Version()
	m.mu.RUnlock()
	if back {
		m.update.Lock()
		defer m.update.Unlock()
		return m.reload(ctx)
	}
	return m.follow(ctx, head)
}

// reload builds the newest tree from the database.
func (m *merkleTrees) reload(ctx context.Context) error {
	snap, rows, err := m.db.MerkleState(ctx)
	if err != nil {
		return err
	}
	tree, index, err := tufrepo.BuildMerkleTree(snap, rows)
	if err != nil {
		return err
	}
	leaves := make([]merkle.Leaf, len(rows))
	for i, r := range rows {
		leaves[i] = r.Leaf
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tree, m.leaves, m.index, m.undo = tree, leaves, index, nil
	return nil
}

// prune drops what the tree no longer keeps. Called with mu held.
func (m *merkleTrees) prune() {
	m.tree.Prune(m.limits(), m.now())
	oldest := m.tree.Oldest()
	i := 0
	for i < len(m.undo) && m.undo[i].version <= oldest {
		i++
	}
	clear(m.undo[:i])
	m.undo = m.undo[i:]
}

// leafAt returns leaf i as version v had it. Called with mu held for reading.
func (m *merkleTrees) leafAt(v int64, i uint64) merkle.Leaf {
	for _, u := range m.undo {
		if u.version <= v {
			continue
		}
		if l, ok := u.old[i]; ok {
			return l
		}
	}
	return m.leaves[i]
}

// merkleOf reads what timestamp version v says of the tree.
func (s *Server) merkleOf(ctx context.Context, v int64) (tsMerkle, error) {
	m := s.merkle
	m.mu.RLock()
	t, ok := m.ts[v]
	m.mu.RUnlock()
	if ok {
		return t, nil
	}
	// As for versioned metadata: from memory, else a bounded database read, and 503 on a
	// replica cut off from the database (metaVersion).
	f, err := s.metaVersion(ctx, tufrepo.RoleTimestamp, v)
	if err != nil {
		switch {
		case api.CodeOf(err) == api.CodeNotFound:
			return t, api.Errorf(api.CodeNotFound, "timestamp version %d was never published", v)
		case errors.Is(err, errStale) || errors.Is(err, context.DeadlineExceeded):
			return t, api.Wrap(api.CodeUnavailable, err, "this replica cannot reach the database to read timestamp version %d; retry", v)
		}
		return t, err
	}
	md, err := metadata.Timestamp().FromBytes(f.raw)
	if err != nil {
		return t, fmt.Errorf("parsing timestamp %d: %w", v, err)
	}
	if sm := md.Signed.Meta[tufrepo.MetaName(tufrepo.RoleSnapshot)]; sm != nil {
		t.snapshot = sm.Version
	}
	if field, ok := md.Signed.UnrecognizedFields[merkle.FieldName]; ok {
		if t.root, err = merkle.ParseField(field); err != nil {
			return t, fmt.Errorf("timestamp %d: %w", v, err)
		}
		t.has = true
	}
	m.mu.Lock()
	if len(m.ts) >= merkleTimestamps {
		for k := range m.ts {
			delete(m.ts, k)
			break
		}
	}
	m.ts[v] = t
	m.mu.Unlock()
	return t, nil
}

func (s *Server) routeMerkle(r chi.Router) {
	r.Get("/merkle/{timestamp}/{role}", s.getMerkleProof)
}

// getMerkleProof answers the inclusion proof of a role's leaf in the tree a timestamp
// version commits to. The answer for a timestamp version never changes: cacheable.
func (s *Server) getMerkleProof(w http.ResponseWriter, r *http.Request) {
	proof, err := s.merkleProof(r.Context(), chi.URLParam(r, "timestamp"), chi.URLParam(r, "role"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body bytes.Buffer
	_ = json.NewEncoder(&body).Encode(proof)
	w.Header().Set("Content-Type", api.MediaJSON)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("Vary", "Accept-Encoding")
	out := body.Bytes()
	if len(out) >= gzipMin && acceptsGzip(r.Header["Accept-Encoding"]) {
		out = gzipOnce(out)
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func (s *Server) merkleProof(ctx context.Context, tsParam, role string) (*api.MerkleProof, error) {
	tsv, err := strconv.ParseInt(tsParam, 10, 64)
	if err != nil || tsv < 1 {
		return nil, api.Errorf(api.CodeBadRequest, "timestamp version %.40q is not a positive integer", tsParam)
	}
	if !tufrepo.InMerkleTree(role) || !validRoleName(role) {
		return nil, api.Errorf(api.CodeBadRequest, "%.80q is not a role name that a Merkle snapshot lists (roles are [a-z0-9._-], never root, timestamp or snapshot)", role)
	}
	t, err := s.merkleOf(ctx, tsv)
	if err != nil {
		return nil, err
	}
	if !t.has {
		return nil, api.Errorf(api.CodeNoMerkleTree, "timestamp version %d carries no Merkle snapshot (it was signed before the server made them): use snapshot.json", tsv)
	}
	m := s.merkle
	if err := m.follow(ctx, t.snapshot); err != nil {
		return nil, err
	}
	p, err := m.proof(tsv, t, role)
	var bad *rootMismatch
	if errors.As(err, &bad) {
		// This replica's tree does not make the root the timestamp signed: never serve a
		// proof that cannot verify; rebuild from the database on the next request.
		m.mu.Lock()
		m.tree = nil
		m.mu.Unlock()
	}
	return p, err
}

type rootMismatch struct{ msg string }

func (e *rootMismatch) Error() string { return e.msg }

// proof builds the proof of role in the tree timestamp tsv commits to (t).
func (m *merkleTrees) proof(tsv int64, t tsMerkle, role string) (*api.MerkleProof, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.tree == nil {
		return nil, api.Errorf(api.CodeUnavailable, "the Merkle snapshot is being rebuilt: try again")
	}
	root, err := m.tree.RootAt(t.snapshot)
	if errors.Is(err, merkle.ErrNotKept) {
		return nil, api.Errorf(api.CodePruned, "the Merkle snapshot of timestamp version %d (snapshot %d) is no longer kept: fetch timestamp.json again", tsv, t.snapshot)
	}
	if err != nil {
		return nil, err
	}
	if root != t.root {
		return nil, &rootMismatch{fmt.Sprintf("merkle snapshot %d: this replica computes root %x (%d leaves), timestamp %d signed %x (%d)", t.snapshot, root.Hash, root.Size, tsv, t.root.Hash, t.root.Size)}
	}
	i, ok := m.index[role]
	if !ok || i >= root.Size {
		return nil, api.Errorf(api.CodeRoleNotInTree, "the Merkle snapshot of timestamp version %d has no leaf for role %q", tsv, role)
	}
	size, hashes, err := m.tree.ProofAt(t.snapshot, i)
	if err != nil {
		return nil, err
	}
	leaf := m.leafAt(t.snapshot, i)
	p := &api.MerkleProof{Timestamp: tsv, Role: leaf.Role, Version: leaf.Version, Length: leaf.Length, SHA256: hex.EncodeToString(leaf.SHA256[:]), Index: i, Size: size, Hashes: make([]string, len(hashes))}
	for j, h := range hashes {
		p.Hashes[j] = hex.EncodeToString(h[:])
	}
	return p, nil
}

// followMerkle keeps the tree at the served head, so that the first proofs after a
// publish need no database read and older versions are timed from when they were
// replaced.
func (s *Server) followMerkle(ctx context.Context) {
	for {
		changed := s.cache.Changed()
		if h := s.cache.Head(); h != nil {
			if err := s.merkle.followHead(ctx, h.snapshot.version); err != nil && ctx.Err() == nil {
				s.log.Error("following the Merkle snapshot", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// validRoleName: role names are [a-z0-9._-] (project names and shard roles), at most
// merkle.MaxRoleName bytes.
func validRoleName(role string) bool {
	if role == "" || len(role) > merkle.MaxRoleName {
		return false
	}
	for i := 0; i < len(role); i++ {
		c := role[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
