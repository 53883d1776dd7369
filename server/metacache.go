package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// metaFile is one metadata file ready to serve.
type metaFile struct {
	raw     []byte
	etag    string
	version int64
	expires time.Time
}

func newMetaFile(m *store.Metadata) *metaFile {
	sum := sha256.Sum256(m.Raw)
	return &metaFile{raw: m.Raw, etag: etagOf(sum[:]), version: m.Version, expires: m.Expires}
}

func etagOf(sum []byte) string { return `"` + hex.EncodeToString(sum[:16]) + `"` }

// head is the published state a replica serves: replaced as a whole, never mutated.
type head struct {
	timestamp *metaFile
	snapshot  *metaFile
	root      *metaFile
	// expires and versions of every top-level and online role, for /readyz, metrics and
	// the status API.
	expires  map[string]time.Time
	versions map[string]int64
}

// metaCache keeps what clients fetch most in memory: the current timestamp, snapshot and
// root, and recently served immutable versions. It is refreshed when the publisher
// commits (LISTEN/NOTIFY) and by a slow poll in case a notification is lost.
type metaCache struct {
	db  *store.DB
	cur atomic.Pointer[head]

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every new head
	files   map[string]*metaFile
	bytes   int64
	max     int64
}

func newMetaCache(db *store.DB, maxBytes int64) *metaCache {
	return &metaCache{db: db, changed: make(chan struct{}), files: map[string]*metaFile{}, max: maxBytes}
}

// Changed returns a channel that is closed when the head next changes.
func (c *metaCache) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Head returns the current head, or nil before the first refresh.
func (c *metaCache) Head() *head { return c.cur.Load() }

// Refresh loads the published head if it moved.
func (c *metaCache) Refresh(ctx context.Context) error {
	snapV, tsV, err := c.db.Heads(ctx)
	if err != nil {
		return err
	}
	old := c.cur.Load()
	if old != nil && old.timestamp.version == tsV && old.snapshot.version == snapV {
		return nil
	}
	ts, err := c.get(ctx, tufrepo.RoleTimestamp, tsV)
	if err != nil {
		return fmt.Errorf("loading timestamp %d: %w", tsV, err)
	}
	snap, err := c.get(ctx, tufrepo.RoleSnapshot, snapV)
	if err != nil {
		return fmt.Errorf("loading snapshot %d: %w", snapV, err)
	}
	h := &head{timestamp: ts, snapshot: snap, expires: map[string]time.Time{
		tufrepo.RoleTimestamp: ts.expires, tufrepo.RoleSnapshot: snap.expires,
	}, versions: map[string]int64{tufrepo.RoleTimestamp: ts.version, tufrepo.RoleSnapshot: snap.version}}
	// Only the versions and expiries are read each time; root's bytes only when it moved.
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleClaimed, tufrepo.RoleRecentlyClaimed} {
		v, exp, err := c.db.LatestPublishedVersion(ctx, role)
		if err != nil {
			return err
		}
		h.expires[role], h.versions[role] = exp, v
		if role == tufrepo.RoleRoot {
			if old != nil && old.root.version == v {
				h.root = old.root
			} else if h.root, err = c.get(ctx, tufrepo.RoleRoot, v); err != nil {
				return err
			}
		}
	}
	c.cur.Store(h)
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// prime caches a version this replica's publisher just committed, so the refresh that
// follows serves it without reading (and hashing) megabytes back from PostgreSQL.
func (c *metaCache) prime(m tufrepo.MetadataVersion) {
	f := &metaFile{raw: m.Raw, etag: etagOf(m.SHA256), version: m.Version, expires: m.Expires}
	c.put(fmt.Sprintf("%d.%s", m.Version, m.Role), f)
}

// get returns a published metadata version, from memory if it was served before.
// Published versions are immutable, so entries never go stale.
func (c *metaCache) get(ctx context.Context, role string, version int64) (*metaFile, error) {
	key := fmt.Sprintf("%d.%s", version, role)
	c.mu.Lock()
	f, ok := c.files[key]
	c.mu.Unlock()
	if ok {
		return f, nil
	}
	m, err := c.db.PublishedMetadata(ctx, role, version)
	if err != nil {
		return nil, err
	}
	f = newMetaFile(m)
	c.put(key, f)
	return f, nil
}

// put adds an immutable version to the bounded cache.
func (c *metaCache) put(key string, f *metaFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.files[key]; ok {
		return
	}
	// Bounded: evict arbitrary entries until the new one fits. The hot set (current
	// snapshot and timestamp) is held by the head anyway.
	for k, old := range c.files {
		if c.bytes+int64(len(f.raw)) <= c.max {
			break
		}
		delete(c.files, k)
		c.bytes -= int64(len(old.raw))
	}
	c.files[key] = f
	c.bytes += int64(len(f.raw))
}
