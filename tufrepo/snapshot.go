package tufrepo

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// MetaEntry is one role listed in snapshot meta.
type MetaEntry struct {
	Name    string // "<role>.json"
	Version int64
	Length  int64
}

// SnapshotIndex is the role → version table of snapshot metadata, kept sorted so that a
// new snapshot's canonical bytes are produced in one linear pass with no reflection.
// go-tuf's generic canonical encoder costs ~15 µs per entry (1.5 s at 100k projects);
// this writes the same bytes in well under a microsecond per entry.
type SnapshotIndex struct {
	entries []MetaEntry    // sorted by Name, bytewise (the canonical JSON key order)
	added   []MetaEntry    // new names, merged in on the next Encode
	addedAt map[string]int // name → index in added
}

// Set records the version and length of role.
func (s *SnapshotIndex) Set(role string, version, length int64) {
	name := MetaName(role)
	if i, ok := slices.BinarySearchFunc(s.entries, name, cmpEntry); ok {
		s.entries[i].Version, s.entries[i].Length = version, length
		return
	}
	if i, ok := s.addedAt[name]; ok {
		s.added[i].Version, s.added[i].Length = version, length
		return
	}
	if s.addedAt == nil {
		s.addedAt = map[string]int{}
	}
	s.addedAt[name] = len(s.added)
	s.added = append(s.added, MetaEntry{Name: name, Version: version, Length: length})
}

// Get returns the entry of role.
func (s *SnapshotIndex) Get(role string) (MetaEntry, bool) {
	s.merge()
	name := MetaName(role)
	if i, ok := slices.BinarySearchFunc(s.entries, name, cmpEntry); ok {
		return s.entries[i], true
	}
	return MetaEntry{}, false
}

// Len is the number of roles listed.
func (s *SnapshotIndex) Len() int { return len(s.entries) + len(s.added) }

// Entries returns the sorted entries; the slice must not be modified.
func (s *SnapshotIndex) Entries() []MetaEntry {
	s.merge()
	return s.entries
}

func cmpEntry(e MetaEntry, name string) int { return strings.Compare(e.Name, name) }

func (s *SnapshotIndex) merge() {
	if len(s.added) == 0 {
		return
	}
	slices.SortFunc(s.added, func(a, b MetaEntry) int { return strings.Compare(a.Name, b.Name) })
	merged := make([]MetaEntry, 0, len(s.entries)+len(s.added))
	i, j := 0, 0
	for i < len(s.entries) && j < len(s.added) {
		if s.entries[i].Name < s.added[j].Name {
			merged = append(merged, s.entries[i])
			i++
		} else {
			merged = append(merged, s.added[j])
			j++
		}
	}
	merged = append(merged, s.entries[i:]...)
	merged = append(merged, s.added[j:]...)
	s.entries, s.added = merged, s.added[:0]
	clear(s.addedAt)
}

// FormatExpires renders an expiry as TUF and go-tuf do (RFC 3339, UTC, whole seconds).
func FormatExpires(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// EncodeSigned returns the canonical JSON of the snapshot's "signed" value. The output is
// byte-identical to go-tuf's canonical encoding of the same SnapshotType (tested).
func (s *SnapshotIndex) EncodeSigned(version int64, expires time.Time) []byte {
	s.merge()
	b := make([]byte, 0, 96+len(s.entries)*48)
	b = append(b, `{"_type":"snapshot","expires":"`...)
	b = append(b, FormatExpires(expires)...)
	b = append(b, `","meta":{`...)
	for i, e := range s.entries {
		if i > 0 {
			b = append(b, ',')
		}
		// Role names are restricted to [a-z0-9._-] (ValidateProjectName): no escaping.
		b = append(b, '"')
		b = append(b, e.Name...)
		b = append(b, `":{`...)
		if e.Length != 0 {
			b = append(b, `"length":`...)
			b = strconv.AppendInt(b, e.Length, 10)
			b = append(b, ',')
		}
		b = append(b, `"version":`...)
		b = strconv.AppendInt(b, e.Version, 10)
		b = append(b, '}')
	}
	b = append(b, `},"spec_version":"`...)
	b = append(b, SpecVersion...)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, '}')
	return b
}

// ParseSnapshot rebuilds the index from a snapshot metadata file.
func ParseSnapshot(raw []byte) (*SnapshotIndex, *metadata.Metadata[metadata.SnapshotType], error) {
	md, err := metadata.Snapshot().FromBytes(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing snapshot: %w", err)
	}
	idx := &SnapshotIndex{entries: make([]MetaEntry, 0, len(md.Signed.Meta))}
	for name, mf := range md.Signed.Meta {
		idx.entries = append(idx.entries, MetaEntry{Name: name, Version: mf.Version, Length: mf.Length})
	}
	slices.SortFunc(idx.entries, func(a, b MetaEntry) int { return strings.Compare(a.Name, b.Name) })
	return idx, md, nil
}
