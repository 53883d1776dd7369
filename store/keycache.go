package store

import (
	"encoding/json"
	"sync"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// maxCachedKeySets bounds keyCache; past it the cache starts again from empty.
const maxCachedKeySets = 4096

// keyCache holds the decoded maintainer keys of projects by their stored JSON. Every upload
// reads its project's keys, and decoding them through go-tuf (which decodes each key twice,
// once for its unrecognised fields) was a few percent of cairnd's CPU per upload. Entries
// are keyed by the exact bytes, so they can never be stale: a project whose keys change has
// other bytes.
type keyCache struct {
	mu sync.Mutex
	m  map[string]map[string]*metadata.Key
}

// decode returns the keys stored as raw. The map and the keys it holds are shared between
// callers and must not be modified.
func (c *keyCache) decode(raw []byte) (map[string]*metadata.Key, error) {
	c.mu.Lock()
	keys, ok := c.m[string(raw)]
	c.mu.Unlock()
	if ok {
		return keys, nil
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeySets {
		c.m = map[string]map[string]*metadata.Key{}
	}
	c.m[string(raw)] = keys
	c.mu.Unlock()
	return keys, nil
}
