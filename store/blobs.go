package store

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/jackc/pgx/v5"
)

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 reports whether s is a lowercase hex SHA-256.
func ValidSHA256(s string) bool { return sha256HexRE.MatchString(s) }

// FSBlobs is a content-addressed blob store on a file system: blobs live at
// <dir>/sha256/<first two hex>/<hex>, written through a temporary file and renamed into
// place only once their digest has been checked, so a reader never sees a partial blob.
//
// With Remote set, finished blobs live there instead (an S3 bucket): uploads are still
// received, hashed and checked under Dir, and only verified bytes are handed over.
type FSBlobs struct {
	Dir    string
	Remote Content
	// dirs makes each blob's rename durable before Put returns (grouped fsyncs).
	dirs dirSyncer
}

// Content holds finished, verified blobs by digest (S3Content).
type Content interface {
	// Stat returns a blob's size and time; an error wrapping os.ErrNotExist if absent.
	Stat(ctx context.Context, digest string) (BlobInfo, error)
	// Open returns a reader that can seek (for Range requests) and the blob's size.
	Open(ctx context.Context, digest string) (io.ReadSeekCloser, int64, error)
	// Ingest moves the verified file at path in as digest.
	Ingest(ctx context.Context, digest, path string) error
	// Delete removes a blob; a missing one is not an error.
	Delete(ctx context.Context, digest string) error
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Size    int64
	ModTime time.Time
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

// Put streams r into the store, checking while it streams that it is at most max bytes and
// hashes to sum. It returns the size. On any error nothing is left behind.
func (b *FSBlobs) Put(ctx context.Context, sum string, r io.Reader, max int64) (int64, error) {
	if !ValidSHA256(sum) {
		return 0, api.Errorf(api.CodeBadRequest, "digest must be sha256:<64 lowercase hex digits>")
	}
	// Locked while it is written and until it is placed, so garbage collection leaves it
	// alone; one that a killed process left is collected (RemoveAbandonedTemp).
	tmp, err := b.createLockedTemp("upload-*")
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
	// Placed before it is closed: closing drops the lock that keeps collection away.
	if err := b.place(ctx, "sha256:"+sum, tmp.Name()); err != nil {
		return 0, err
	}
	return n, nil
}

// place moves a verified file into the store as digest.
func (b *FSBlobs) place(ctx context.Context, digest, path string) error {
	if b.Remote != nil {
		return b.Remote.Ingest(ctx, digest, path)
	}
	dst, err := b.DigestPath(digest)
	if err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating blob directory: %w", err)
	}
	if os.IsNotExist(statErr) {
		// A new fan-out directory: its own name must be durable too.
		if err := b.dirs.Sync(ctx, filepath.Dir(dir)); err != nil {
			return fmt.Errorf("creating blob directory: %w", err)
		}
	}
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("storing blob: %w", err)
	}
	// The blob row commits after this returns, and roles then reference the blob: its
	// name must survive a crash as its bytes do.
	if err := b.dirs.Sync(ctx, dir); err != nil {
		return fmt.Errorf("storing blob: %w", err)
	}
	return nil
}

// Open opens a blob for reading.
func (b *FSBlobs) Open(ctx context.Context, sum string) (io.ReadSeekCloser, error) {
	if !ValidSHA256(sum) {
		return nil, api.Errorf(api.CodeNotFound, "no such blob")
	}
	f, err := b.OpenDigest(ctx, "sha256:"+sum)
	if errors.Is(err, os.ErrNotExist) {
		return nil, api.Errorf(api.CodeNotFound, "blob sha256:%s is not stored", sum)
	}
	return f, err
}

// Exists reports whether the blob is present.
func (b *FSBlobs) Exists(ctx context.Context, sum string) bool {
	if !ValidSHA256(sum) {
		return false
	}
	_, err := b.StatDigest(ctx, "sha256:"+sum)
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

// Digests of the OCI registry name their algorithm ("sha256:<hex>", "sha512:<hex>"). Blobs
// of either algorithm live side by side, <dir>/<algorithm>/<first two hex>/<hex>, so a
// sha256 OCI layer and a release file with the same bytes are one file.

var digestHexLen = map[string]int{"sha256": 64, "sha512": 128}

// ParseDigest splits an OCI digest into its algorithm and lowercase hex, and checks both.
func ParseDigest(d string) (algo, hexsum string, err error) {
	algo, hexsum, ok := strings.Cut(d, ":")
	if !ok {
		return "", "", fmt.Errorf("digest %.80q is not <algorithm>:<hex>", d)
	}
	n, known := digestHexLen[algo]
	if !known {
		return "", "", fmt.Errorf("digest algorithm %.20q is not supported: use sha256 or sha512", algo)
	}
	if len(hexsum) != n || strings.Trim(hexsum, "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("digest %.80q: a %s digest is %d lowercase hex digits", d, algo, n)
	}
	return algo, hexsum, nil
}

// NewDigester returns the hash of a supported algorithm.
func NewDigester(algo string) (hash.Hash, error) {
	switch algo {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("digest algorithm %.20q is not supported: use sha256 or sha512", algo)
}

// DigestPath returns where a blob of a valid digest is stored.
func (b *FSBlobs) DigestPath(digest string) (string, error) {
	algo, sum, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(b.Dir, algo, sum[:2], sum), nil
}

// OpenDigest opens a blob by its OCI digest; os.ErrNotExist if it is not stored. A local
// blob is an *os.File, which http.ServeContent sends with sendfile.
func (b *FSBlobs) OpenDigest(ctx context.Context, digest string) (io.ReadSeekCloser, error) {
	if b.Remote != nil {
		r, _, err := b.Remote.Open(ctx, digest)
		return r, err
	}
	p, err := b.DigestPath(digest)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// StatDigest returns the size and time of a stored blob.
func (b *FSBlobs) StatDigest(ctx context.Context, digest string) (BlobInfo, error) {
	if b.Remote != nil {
		return b.Remote.Stat(ctx, digest)
	}
	p, err := b.DigestPath(digest)
	if err != nil {
		return BlobInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// uploadDir holds the bytes of OCI upload sessions, on the same file system as the blobs so
// that completing an upload is a rename.
func (b *FSBlobs) uploadDir() string { return filepath.Join(b.Dir, "uploads") }

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// UploadPath returns the file of an upload session (IDs are 32 hex digits).
func (b *FSBlobs) UploadPath(id string) (string, error) {
	if !uploadIDRE.MatchString(id) {
		return "", fmt.Errorf("upload ID %.80q is malformed", id)
	}
	return filepath.Join(b.uploadDir(), id), nil
}

// CreateLockedUpload creates the empty file of a private upload and holds its lock until
// the returned function is called (garbage collection leaves locked files alone).
func (b *FSBlobs) CreateLockedUpload(id string) (func(), error) {
	p, err := b.UploadPath(id)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.uploadDir(), 0o750); err != nil {
		return nil, fmt.Errorf("creating upload directory: %w", err)
	}
	// Created and locked in tmp/, then moved (the lock goes with the file): it is never
	// seen unlocked under its own name. createLockedTemp makes the file again when a
	// collection of tmp/ takes it in the instant before it is locked.
	f, err := b.createLockedTemp("oci-upload-" + id + "-*")
	if err != nil {
		return nil, fmt.Errorf("creating upload file: %w", err)
	}
	tmp := f.Name()
	if err := f.Chmod(0o640); err != nil { // as the other upload files (CreateTemp makes 0600)
		f.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("creating upload file: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		f.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("creating upload file: %w", err)
	}
	return func() { f.Close() }, nil
}

// CreateUpload creates the empty file of a new upload session.
func (b *FSBlobs) CreateUpload(id string) error {
	p, err := b.UploadPath(id)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.uploadDir(), 0o750); err != nil {
		return fmt.Errorf("creating upload directory: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("creating upload file: %w", err)
	}
	return f.Close()
}

// AppendUpload writes r at offset (the bytes the session holds) of an upload, accepting at
// most max-offset bytes in total. On any error the file is cut back to offset, so a failed
// chunk leaves nothing behind. It returns the new size.
//
// It hashes (sha256) while it writes and returns the hash of the whole upload so far (nil
// if the saved state did not match), for SaveUploadHash and CommitUpload, so completing
// a sha256 upload does not read the bytes again; and it starts the write-back of what it
// wrote as it goes, so the fsync at completion has little left to do.
func (b *FSBlobs) AppendUpload(id string, offset int64, r io.Reader, max int64) (int64, hash.Hash, error) {
	p, err := b.UploadPath(id)
	if err != nil {
		return 0, nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("opening upload file: %w", err)
	}
	defer f.Close()
	// A chunk that failed half-way on another replica (or before a crash) is cut off here.
	if err := f.Truncate(offset); err != nil {
		return 0, nil, fmt.Errorf("resetting upload file: %w", err)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, nil, fmt.Errorf("seeking upload file: %w", err)
	}
	h := b.resumeHash(p, offset)
	w := &writeback{f: f, off: offset}
	var dst io.Writer = w
	if h != nil {
		dst = io.MultiWriter(w, h)
	}
	n, err := io.Copy(dst, io.LimitReader(r, max-offset+1))
	if err == nil && offset+n > max {
		err = api.Errorf(api.CodeTooLarge, "blob is larger than the limit of %d bytes", max)
	}
	if err != nil {
		_ = f.Truncate(offset) // the hash state file still describes offset
		return 0, nil, err
	}
	return offset + n, h, nil
}

// LockUpload takes the exclusive lock of an upload session's file (flock; it also works
// on NFS), waiting for the holder. os.ErrNotExist means the session has ended. The lock is
// on the file that is still the session's after the wait: a completed upload was renamed
// into the store, and its lock is not the session's.
func (b *FSBlobs) LockUpload(id string) (func(), error) {
	p, err := b.UploadPath(id)
	if err != nil {
		return nil, err
	}
	for {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		if err := lockFile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking upload file: %w", err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(p)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() { f.Close() }, nil // closing releases the lock
		}
		f.Close()
		if err2 != nil {
			return nil, err2
		}
	}
}

// TruncateUpload cuts an upload back to size (a chunk that was received but refused).
func (b *FSBlobs) TruncateUpload(id string, size int64) error {
	p, err := b.UploadPath(id)
	if err != nil {
		return err
	}
	if err := os.Truncate(p, size); err != nil {
		return fmt.Errorf("resetting upload file: %w", err)
	}
	return nil
}

// SaveUploadHash keeps the sha256 state of an upload of size bytes beside it, for the next
// chunk and for completion (a nil h removes a stale one).
func (b *FSBlobs) SaveUploadHash(id string, size int64, h hash.Hash) {
	if p, err := b.UploadPath(id); err == nil {
		saveHash(p, size, h)
	}
}

// writeback writes to an upload file and asks the kernel to start writing each 8 MiB to
// disk as soon as it is written (a no-op where that is not available).
type writeback struct {
	f       *os.File
	off     int64 // file offset of the next write
	flushed int64 // offset up to which write-back was started
}

const writebackStep = 8 << 20

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.flushed >= writebackStep {
		startWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
	return n, err
}

// The sha256 state of an upload is <upload>.sha256: the 8-byte size it covers, then the
// marshalled hash. It is only an optimisation: when it is missing or stale, completion
// hashes the file.
func (b *FSBlobs) resumeHash(upload string, offset int64) hash.Hash {
	h := sha256.New()
	if offset == 0 {
		return h
	}
	st, err := os.ReadFile(upload + ".sha256")
	if err != nil || len(st) < 8 || int64(binary.BigEndian.Uint64(st)) != offset {
		return nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st[8:]); err != nil {
		return nil
	}
	return h
}

func saveHash(upload string, size int64, h hash.Hash) {
	stp := upload + ".sha256"
	if h == nil {
		_ = os.Remove(stp)
		return
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		_ = os.Remove(stp)
		return
	}
	buf := binary.BigEndian.AppendUint64(nil, uint64(size))
	tmp := stp + ".tmp"
	if os.WriteFile(tmp, append(buf, state...), 0o640) != nil || os.Rename(tmp, stp) != nil {
		_ = os.Remove(stp)
	}
}

// CommitUpload checks a finished upload against digest (from h, the sha256 AppendUpload
// returned, or the saved state, or by hashing the file) and, if it matches, syncs it and renames it into the store
// (replacing an identical file is harmless: same digest, same bytes). On a mismatch the
// upload file is left as it was. A session whose file is gone (committed, or cancelled)
// is reported by AppendUpload as os.ErrNotExist.
func (b *FSBlobs) CommitUpload(ctx context.Context, id, digest string, h hash.Hash) (int64, error) {
	p, err := b.UploadPath(id)
	if err != nil {
		return 0, err
	}
	algo, _, err := ParseDigest(digest)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("opening upload file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("reading upload file: %w", err)
	}
	n := fi.Size()
	if algo != "sha256" {
		h = nil
	} else if h == nil {
		h = b.resumeHash(p, n)
	}
	if h == nil {
		h, _ = NewDigester(algo)
		if n, err = io.Copy(h, f); err != nil {
			return 0, fmt.Errorf("hashing upload: %w", err)
		}
	}
	if got := algo + ":" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return 0, api.Errorf(api.CodeDigestMismatch, "the uploaded %d bytes hash to %s, not %s", n, got, digest)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("syncing blob: %w", err)
	}
	if err := b.place(ctx, digest, p); err != nil {
		return 0, err
	}
	_ = os.Remove(p + ".sha256")
	return n, nil
}

// TryRemoveUpload deletes an upload file unless someone holds its lock (a chunk or a
// monolithic push is being written): garbage collection must not pull a file from under
// a writer, however old it looks. It reports whether the file is gone.
func (b *FSBlobs) TryRemoveUpload(id string) (bool, error) {
	p, err := b.UploadPath(id)
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		_ = os.Remove(p + ".sha256")
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening upload file: %w", err)
	}
	defer f.Close()
	if ok, err := tryLockFile(f); err != nil || !ok {
		return false, err
	}
	return true, b.RemoveUpload(id)
}

// RemoveUpload deletes an upload session's file; a missing file is not an error.
func (b *FSBlobs) RemoveUpload(id string) error {
	p, err := b.UploadPath(id)
	if err != nil {
		return err
	}
	_ = os.Remove(p + ".sha256")
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing upload file: %w", err)
	}
	return nil
}

// UploadFiles lists the upload session files with their modification times (for garbage
// collection of files whose session row is gone).
func (b *FSBlobs) UploadFiles() (map[string]time.Time, error) {
	ents, err := os.ReadDir(b.uploadDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing upload files: %w", err)
	}
	out := map[string]time.Time{}
	for _, e := range ents {
		if !uploadIDRE.MatchString(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out[e.Name()] = fi.ModTime()
		}
	}
	return out, nil
}

// RemoveUploadLeftovers removes, from the uploads directory, the side files (hash states)
// of uploads that are gone, older than grace.
func (b *FSBlobs) RemoveUploadLeftovers(grace time.Duration, dryRun bool) (int, error) {
	ents, err := os.ReadDir(b.uploadDir())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing upload files: %w", err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		id, _, found := strings.Cut(name, ".")
		if !found || !uploadIDRE.MatchString(id) {
			continue
		}
		if _, err := os.Stat(filepath.Join(b.uploadDir(), id)); err == nil {
			continue // its upload is still there
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < grace {
			continue
		}
		n++
		if !dryRun {
			if err := os.Remove(filepath.Join(b.uploadDir(), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, fmt.Errorf("removing %s: %w", name, err)
			}
		}
	}
	return n, nil
}

// RemoveDigest deletes a stored blob (garbage collection); missing is not an error.
func (b *FSBlobs) RemoveDigest(ctx context.Context, digest string) error {
	if b.Remote != nil {
		return b.Remote.Delete(ctx, digest)
	}
	p, err := b.DigestPath(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing blob %s: %w", digest, err)
	}
	return nil
}
