package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// Uploads holds the bytes of OCI upload sessions (<blob-dir>/uploads/<id>), on the file
// system of tmp, so that creating a session file is a rename, and completing one into a
// local store too. Completed uploads go into content. The session rows are the database's
// (store); this type holds only files, and Session is the one writer of a session's file.
//
// Chunks of one session are written one at a time under the file's lock (flock, which
// also holds on NFS): Lock waits for it, or gives up when its context ends. sha256 is
// computed as the bytes arrive and its state kept beside the file (<id>.sha256), so
// completion does not read the blob again; write-back starts every 8 MiB so the fsync at
// completion is short.
type Uploads struct {
	dir     string
	tmp     *Temp
	content Content
	// bufs holds the copy buffers of Append (*[]byte of copyBufSize bytes), so that a
	// small push does not allocate a large buffer.
	bufs sync.Pool
	// poll bounds the wait between two tries of a held lock (a waiter polls, so that it can
	// give up when its context ends: a blocking flock cannot be interrupted).
	poll time.Duration
}

// NewUploads creates the uploads directory dir; tmp must be on its file system.
func NewUploads(dir string, tmp *Temp, content Content) (*Uploads, error) {
	u := &Uploads{dir: dir, tmp: tmp, content: content, poll: 50 * time.Millisecond}
	if err := u.mkdir(); err != nil {
		return nil, err
	}
	return u, nil
}

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidUploadID reports whether id has the form of a session ID (32 hex digits).
func ValidUploadID(id string) bool { return uploadIDRE.MatchString(id) }

func (u *Uploads) path(id string) (string, error) {
	if !ValidUploadID(id) {
		return "", fmt.Errorf("upload ID %.80q is malformed", id)
	}
	return filepath.Join(u.dir, id), nil
}

// Create creates the empty file of a new upload session.
func (u *Uploads) Create(id string) error {
	p, err := u.path(id)
	if err != nil {
		return err
	}
	if err := u.mkdir(); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("creating upload file: %w", err)
	}
	return f.Close()
}

// mkdir makes the uploads directory again if it is gone (a volume mounted over the blob
// directory after start): a new session then fails only for a cause the answer can name
// (a full or read-only disk).
func (u *Uploads) mkdir() error {
	if err := os.MkdirAll(u.dir, 0o750); err != nil {
		return fmt.Errorf("creating upload directory: %w", err)
	}
	return nil
}

// CreateLocked creates the empty file of a private upload (a monolithic push, with no
// session row) and returns it locked: garbage collection leaves it alone until Close.
func (u *Uploads) CreateLocked(id string) (*Session, error) {
	p, err := u.path(id)
	if err != nil {
		return nil, err
	}
	if err := u.mkdir(); err != nil {
		return nil, err
	}
	// Created and locked in tmp/, then moved (the lock goes with the file): it is never
	// seen unlocked under its own name. Temp.Create makes the file again when a
	// collection of tmp/ takes it in the instant before it is locked.
	f, err := u.tmp.Create("oci-upload-" + id + "-*")
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
	return &Session{u: u, id: id, path: p, f: f}, nil
}

// Lock takes the exclusive lock of an upload session's file, waiting while another
// request holds it, until ctx ends (the error then says so and matches ctx.Err()). An
// error matching fs.ErrNotExist means the session has ended. The lock is on the file that
// is still the session's after the wait: a completed upload was renamed into the store,
// and its lock is not the session's.
func (u *Uploads) Lock(ctx context.Context, id string) (*Session, error) {
	p, err := u.path(id)
	if err != nil {
		return nil, err
	}
	wait := time.Millisecond
	for {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		ok, err := tryLockFile(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking upload file: %w", err)
		}
		if ok {
			held, err1 := f.Stat()
			now, err2 := os.Stat(p)
			if err1 == nil && err2 == nil && os.SameFile(held, now) {
				return &Session{u: u, id: id, path: p, f: f}, nil
			}
			f.Close()
			if err2 != nil {
				return nil, err2
			}
			continue // taken over by a new file of the same name: lock that one
		}
		f.Close()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for upload %s, which another request is writing to: %w", id, context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(2*wait, u.poll)
	}
}

// Remove deletes an upload session's file (the session was cancelled); a missing file is
// not an error.
func (u *Uploads) Remove(id string) error {
	p, err := u.path(id)
	if err != nil {
		return err
	}
	_ = os.Remove(p + ".sha256")
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing upload file: %w", err)
	}
	return nil
}

// TryRemove deletes an upload file unless someone holds its lock (a chunk or a
// monolithic push is being written): garbage collection must not pull a file from under
// a writer, however old it looks. It reports whether the file is gone.
func (u *Uploads) TryRemove(id string) (bool, error) {
	p, err := u.path(id)
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
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
	return true, u.Remove(id)
}

// Files lists the upload session files with their modification times (for garbage
// collection of files whose session row is gone).
func (u *Uploads) Files() (map[string]time.Time, error) {
	ents, err := os.ReadDir(u.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing upload files: %w", err)
	}
	out := map[string]time.Time{}
	for _, e := range ents {
		if !ValidUploadID(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out[e.Name()] = fi.ModTime()
		}
	}
	return out, nil
}

// RemoveLeftovers removes the side files (hash states) of uploads that are gone, older
// than grace at now. With dryRun it only counts.
func (u *Uploads) RemoveLeftovers(grace time.Duration, now time.Time, dryRun bool) (int, error) {
	ents, err := os.ReadDir(u.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing upload files: %w", err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		id, _, found := strings.Cut(name, ".")
		if !found || !ValidUploadID(id) {
			continue
		}
		if _, err := os.Stat(filepath.Join(u.dir, id)); err == nil {
			continue // its upload is still there
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < grace {
			continue
		}
		n++
		if !dryRun {
			if err := os.Remove(filepath.Join(u.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, fmt.Errorf("removing %s: %w", name, err)
			}
		}
	}
	return n, nil
}

// Session is an upload session's file, locked: the one writer of its bytes until Close.
type Session struct {
	u    *Uploads
	id   string
	path string
	f    *os.File // O_RDWR, holding the lock
}

// ID returns the session's ID.
func (s *Session) ID() string { return s.id }

// Close releases the lock.
func (s *Session) Close() error { return s.f.Close() }

// Append writes r at offset (the bytes the session holds), accepting at most max bytes
// in total (more: api.CodeTooLarge). On any error the file is cut back to
// offset, so a failed chunk leaves nothing behind. It returns the new size.
//
// It hashes (sha256) while it writes and returns the hash of the whole upload so far (nil
// if the saved state did not match), for SaveHash and Commit, so completing a sha256
// upload does not read the bytes again; and it starts the write-back of what it wrote as
// it goes, so the fsync at completion has little left to do.
func (s *Session) Append(offset int64, r io.Reader, max int64) (int64, hash.Hash, error) {
	// A chunk that failed half-way on another replica (or before a crash) is cut off here.
	if err := s.f.Truncate(offset); err != nil {
		return 0, nil, fmt.Errorf("resetting upload file: %w", err)
	}
	if _, err := s.f.Seek(offset, io.SeekStart); err != nil {
		return 0, nil, fmt.Errorf("seeking upload file: %w", err)
	}
	h := resumeHash(s.path, offset)
	buf := s.u.buffer()
	defer s.u.bufs.Put(buf)
	n, err := copyHashed(s.f, offset, io.LimitReader(r, max-offset+1), h, *buf)
	if err == nil && offset+n > max {
		err = api.Errorf(api.CodeTooLarge, "blob is larger than the limit of %d bytes", max)
	}
	if err != nil {
		_ = s.f.Truncate(offset) // the hash state file still describes offset
		return 0, nil, err
	}
	return offset + n, h, nil
}

// Truncate cuts the upload back to size (a chunk that was received but refused).
func (s *Session) Truncate(size int64) error {
	if err := s.f.Truncate(size); err != nil {
		return fmt.Errorf("resetting upload file: %w", err)
	}
	return nil
}

// SaveHash keeps the sha256 state of the upload of size bytes beside it, for the next
// chunk and for completion (a nil h removes a stale one).
func (s *Session) SaveHash(size int64, h hash.Hash) { saveHash(s.path, size, h) }

// Remove deletes the session's file while it is locked (a private upload that is done,
// or failed).
func (s *Session) Remove() error { return s.u.Remove(s.id) }

// Commit checks the finished upload against digest (from h, the sha256 Append returned,
// or the saved state, or by hashing the file) and, if it matches, syncs it and moves it
// into the content store (replacing an identical blob is harmless: same digest, same
// bytes). On a mismatch (api.CodeDigestMismatch) the file is left as it was.
func (s *Session) Commit(ctx context.Context, digest string, h hash.Hash) (int64, error) {
	dg, err := api.ParseDigest(digest)
	algo := dg.Algorithm
	if err != nil {
		return 0, err
	}
	fi, err := s.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("reading upload file: %w", err)
	}
	n := fi.Size()
	if algo != "sha256" {
		h = nil
	} else if h == nil {
		h = resumeHash(s.path, n)
	}
	if h == nil {
		h = api.Digest{Algorithm: algo}.Hash()
		if n, err = io.Copy(h, io.NewSectionReader(s.f, 0, n)); err != nil {
			return 0, fmt.Errorf("hashing upload: %w", err)
		}
	}
	if got := algo + ":" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return 0, api.Errorf(api.CodeDigestMismatch, "the uploaded %d bytes hash to %s, not %s", n, got, digest)
	}
	if err := s.f.Sync(); err != nil {
		return 0, fmt.Errorf("syncing blob: %w", err)
	}
	if err := s.u.content.Ingest(ctx, digest, s.path); err != nil {
		return 0, err
	}
	_ = os.Remove(s.path + ".sha256")
	return n, nil
}

// copyBufSize is the size of Append's copy buffer. A 100 MiB push then makes 400 file
// writes instead of io.Copy's 3,200 of 32 KiB, and far fewer socket reads, while the
// buffer stays in a core's cache between the socket read, the file write and the hash.
// BENCHMARKS.md, run 21: a 100 MiB push takes 0.68–0.72× the time it took with 32 KiB
// and 0.7× the CPU; 1 MiB buffers were slower than 256 KiB.
const copyBufSize = 256 << 10

func (u *Uploads) buffer() *[]byte {
	if b, ok := u.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, copyBufSize)
	return &b
}

// writebackStep is how much an upload writes between two starts of write-back.
const writebackStep = 8 << 20

// copyHashed writes r to f, whose offset is off, and hashes the same bytes with h (nil:
// none), until r ends; it returns how many bytes it wrote. Each write is a full buf (the
// last one excepted), and write-back of what was written starts every writebackStep, so
// the fsync at completion has little left to do. One goroutine does it all: hashing in a
// second one, fed through a ring of buffers, cost more CPU than it saved on a 2-core
// machine (run 21).
func copyHashed(f *os.File, off int64, r io.Reader, h hash.Hash, buf []byte) (int64, error) {
	var n int64
	flushed := off
	for {
		m, err := fill(r, buf)
		if m > 0 {
			if _, werr := f.Write(buf[:m]); werr != nil {
				return n, werr
			}
			if h != nil {
				h.Write(buf[:m])
			}
			n += int64(m)
			if end := off + n; end-flushed >= writebackStep {
				startWriteback(f, flushed, end-flushed)
				flushed = end
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fill reads into buf until it is full or r fails or ends (io.EOF); unlike io.ReadFull,
// an end of r stays io.EOF, so that a body cut short (io.ErrUnexpectedEOF from net/http)
// is not taken for the end of the blob.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The sha256 state of an upload is <upload>.sha256: the 8-byte size it covers, then the
// marshalled hash. It is only an optimisation: when it is missing or stale, completion
// hashes the file.
func resumeHash(upload string, offset int64) hash.Hash {
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
