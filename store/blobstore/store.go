package blobstore

import (
	"context"
	"fmt"
	"path/filepath"
)

// Store is a replica's blob directory (--blob-dir) and what lives in it:
//
//	<dir>/tmp/                          Temp: every file being written, locked
//	<dir>/<algorithm>/<2 hex>/<hex>     Content when it is FS
//	<dir>/uploads/<id>[.sha256]         Uploads: OCI upload sessions
//	<dir>/metadata/<hex sha256>         Meta: large signed metadata versions
//
// With S3 configured, Content is the bucket and finished blobs live only there; the rest
// stays in dir (replicas share it).
type Store struct {
	Dir     string
	Temp    *Temp
	Content Content
	Uploads *Uploads
	Meta    *MetaDir
}

// Open opens (creating its directories) the blob directory dir, with finished blobs on
// the same file system, or in the bucket s3 names if it is not nil.
func Open(ctx context.Context, dir string, s3 *S3Config) (*Store, error) {
	tmp, err := NewTemp(filepath.Join(dir, "tmp"))
	if err != nil {
		return nil, err
	}
	var content Content
	if s3 != nil {
		if content, err = NewS3(ctx, *s3, tmp); err != nil {
			return nil, err
		}
	} else if content, err = NewFS(dir, tmp); err != nil {
		return nil, err
	}
	uploads, err := NewUploads(filepath.Join(dir, "uploads"), tmp, content)
	if err != nil {
		return nil, err
	}
	return &Store{Dir: dir, Temp: tmp, Content: content, Uploads: uploads, Meta: NewMetaDir(filepath.Join(dir, "metadata"), tmp)}, nil
}

// Local returns the file system store when finished blobs are on this file system (they
// can then be hard-linked and sent with sendfile), and false when they are remote.
func (s *Store) Local() (*FS, bool) {
	fs, ok := s.Content.(*FS)
	return fs, ok
}

// OpenDir opens a blob directory that keeps its finished blobs itself (no S3).
func OpenDir(dir string) (*Store, error) {
	s, err := Open(context.Background(), dir, nil)
	if err != nil {
		return nil, fmt.Errorf("opening blob directory %s: %w", dir, err)
	}
	return s, nil
}
