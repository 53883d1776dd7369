package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/cairn-dev/cairn/api"
	"github.com/jackc/pgx/v5"
)

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 reports whether s is a lowercase hex SHA-256.
func ValidSHA256(s string) bool { return sha256HexRE.MatchString(s) }

// FSBlobs is a content-addressed blob store on a file system: blobs live at
// <dir>/sha256/<first two hex>/<hex>, written through a temporary file and renamed into
// place only once their digest has been checked, so a reader never sees a partial blob.
type FSBlobs struct {
	Dir string
}

// NewFSBlobs creates the directories of a blob store under dir.
func NewFSBlobs(dir string) (*FSBlobs, error) {
	for _, d := range []string{filepath.Join(dir, "sha256"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("creating blob directory: %w", err)
		}
	}
	return &FSBlobs{Dir: dir}, nil
}

func (b *FSBlobs) path(sum string) string {
	return filepath.Join(b.Dir, "sha256", sum[:2], sum)
}

// Put streams r into the store, checking while it streams that it is at most max bytes and
// hashes to sum. It returns the size. On any error nothing is left behind.
func (b *FSBlobs) Put(ctx context.Context, sum string, r io.Reader, max int64) (int64, error) {
	if !ValidSHA256(sum) {
		return 0, api.Errorf(api.CodeBadRequest, "digest must be sha256:<64 lowercase hex digits>")
	}
	tmp, err := os.CreateTemp(filepath.Join(b.Dir, "tmp"), "upload-*")
	if err != nil {
		return 0, fmt.Errorf("creating temporary blob: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, max+1))
	if err != nil {
		return 0, fmt.Errorf("receiving blob: %w", err)
	}
	if n > max {
		return 0, api.Errorf(api.CodeTooLarge, "blob is larger than the limit of %d bytes", max)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return 0, api.Errorf(api.CodeDigestMismatch, "uploaded bytes hash to sha256:%s, not sha256:%s: check the file and the digest", got, sum)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("syncing blob: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("closing blob: %w", err)
	}
	dst := b.path(sum)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return 0, fmt.Errorf("creating blob directory: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, fmt.Errorf("storing blob: %w", err)
	}
	return n, nil
}

// Open opens a blob for reading.
func (b *FSBlobs) Open(ctx context.Context, sum string) (*os.File, error) {
	if !ValidSHA256(sum) {
		return nil, api.Errorf(api.CodeNotFound, "no such blob")
	}
	f, err := os.Open(b.path(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, api.Errorf(api.CodeNotFound, "blob sha256:%s is not stored", sum)
	}
	return f, err
}

// Exists reports whether the blob file is present.
func (b *FSBlobs) Exists(sum string) bool {
	if !ValidSHA256(sum) {
		return false
	}
	_, err := os.Stat(b.path(sum))
	return err == nil
}

// BlobSize returns the recorded size of a blob, and whether it is recorded.
func (db *DB) BlobSize(ctx context.Context, sum string) (int64, bool, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil {
		return 0, false, nil
	}
	var size int64
	err = db.Pool.QueryRow(ctx, `SELECT size FROM blobs WHERE sha256 = $1`, raw).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading blob record: %w", err)
	}
	return size, true, nil
}

// RecordBlob records that a blob is stored; it reports whether the record is new.
func (db *DB) RecordBlob(ctx context.Context, sum string, size int64) (bool, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil {
		return false, err
	}
	tag, err := db.Pool.Exec(ctx, `INSERT INTO blobs (sha256, size) VALUES ($1, $2) ON CONFLICT DO NOTHING`, raw, size)
	if err != nil {
		return false, fmt.Errorf("recording blob: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
