package store

import (
	"maps"
	"sync"

	"github.com/cairn-dev/cairn/tufrepo"
)

// maxCachedFileLists bounds fileCache (projects); past it the cache starts again from empty.
const maxCachedFileLists = 4096

// fileCache holds the published files of recently uploaded projects, so that an upload's
// UploadState does not read, send and decode every file of the project again: that was
// O(files) per upload, the largest read of an upload in PostgreSQL and ~6% of cairnd's CPU
// (BENCHMARKS.md run 18).
//
// An entry is keyed by the project's role version and the sha256 of that role's bytes. A
// project's published files are a function of its current role alone (none may be removed,
// every target is one, and custom data follows the role), so an entry can never be stale:
// after a database restore that reuses a role version the bytes differ, and the files are
// read again. That is also why an entry may be written before its publish commits: if the
// publish fails, the entry only matches a later version with exactly those bytes, whose
// files are the same.
type fileCache struct {
	mu sync.Mutex
	m  map[string]fileList
}

type fileList struct {
	version int64
	sha256  [32]byte
	files   map[string]tufrepo.PublishedFile
}

// get returns the cached entry of project (ok false if none). Its files are shared and
// must not be modified.
func (c *fileCache) get(project string) (fileList, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[project]
	return e, ok
}

func (c *fileCache) put(project string, e fileList) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedFileLists {
		c.m = map[string]fileList{}
	}
	c.m[project] = e
}

// rememberPublished caches the files of a submission's version: those it was validated
// against plus what it adds and changes, as ApplySubmissions stores them.
func (c *fileCache) rememberPublished(s *tufrepo.Submission) {
	if s.Base == nil || len(s.SHA256) != 32 {
		return
	}
	a := s.Accepted
	files := make(map[string]tufrepo.PublishedFile, len(s.Base)+len(a.NewFiles))
	maps.Copy(files, s.Base)
	for _, f := range a.NewFiles {
		files[f.Path] = tufrepo.PublishedFile{Length: f.Length, SHA256: f.SHA256, Custom: f.Custom}
	}
	for _, f := range a.ChangedCustom {
		old := files[f.Path]
		old.Custom = f.Custom
		files[f.Path] = old
	}
	e := fileList{version: a.Version, files: files}
	copy(e.sha256[:], s.SHA256)
	c.put(s.Project, e)
}
