package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// MetaDir keeps the bytes of large metadata versions by sha256, <dir>/<hex sha256>, for
// the publisher (store.MetaFiles): written through a locked file of tmp and renamed into
// place.
type MetaDir struct {
	dir string
	tmp *Temp
}

// NewMetaDir returns the metadata files of dir (created when first written); tmp must be
// on its file system.
func NewMetaDir(dir string, tmp *Temp) *MetaDir { return &MetaDir{dir: dir, tmp: tmp} }

func (m *MetaDir) path(sum []byte) string {
	return filepath.Join(m.dir, hex.EncodeToString(sum))
}

// WriteMeta stores raw under sum. Durable, the file is synced before the rename and the
// directory after it; otherwise it is readable by every replica when this returns, and
// SyncMeta makes it durable.
func (m *MetaDir) WriteMeta(ctx context.Context, sum, raw []byte, durable bool) error {
	dst := m.path(sum)
	if st, err := os.Stat(dst); err == nil && st.Size() == int64(len(raw)) {
		return nil // content-addressed: the same bytes are already there
	}
	if err := os.MkdirAll(m.dir, 0o750); err != nil {
		return fmt.Errorf("creating metadata directory: %w", err)
	}
	// Locked until it is renamed into place, so that garbage collection of tmp/ leaves it
	// alone (Temp.RemoveAbandoned).
	tmp, err := m.tmp.Create("meta-*")
	if err != nil {
		return fmt.Errorf("creating metadata file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := tmp.Write(raw); err != nil {
		return fmt.Errorf("writing metadata file: %w", err)
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("syncing metadata file: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("storing metadata file: %w", err)
	}
	if !durable {
		return nil
	}
	return syncDir(m.dir)
}

// SyncMeta makes bytes written without durable durable.
func (m *MetaDir) SyncMeta(ctx context.Context, sum []byte) error {
	f, err := os.Open(m.path(sum))
	if err != nil {
		return fmt.Errorf("syncing metadata file: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing metadata file: %w", err)
	}
	return syncDir(m.dir)
}

// ReadMeta returns the bytes stored under sum; an error matching fs.ErrNotExist if there
// are none.
func (m *MetaDir) ReadMeta(ctx context.Context, sum []byte) ([]byte, error) {
	raw, err := os.ReadFile(m.path(sum))
	if err != nil {
		return nil, fmt.Errorf("reading metadata file: %w", err)
	}
	return raw, nil
}

// RemoveMeta removes the bytes stored under sum; missing bytes are not an error.
func (m *MetaDir) RemoveMeta(ctx context.Context, sum []byte) error {
	if err := os.Remove(m.path(sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing metadata file: %w", err)
	}
	return nil
}

// MetaFile is one stored metadata file.
type MetaFile struct {
	SHA256  []byte
	ModTime time.Time
}

// List returns the stored metadata files (for the collection of those no row names).
func (m *MetaDir) List() ([]MetaFile, error) {
	entries, err := os.ReadDir(m.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing metadata files: %w", err)
	}
	var out []MetaFile
	for _, e := range entries {
		sum, err := hex.DecodeString(e.Name())
		if err != nil || len(sum) != sha256.Size {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, MetaFile{SHA256: sum, ModTime: info.ModTime()})
	}
	return out, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
