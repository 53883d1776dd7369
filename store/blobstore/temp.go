package blobstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Files being written live in <dir>/tmp until they are renamed into place: uploads
// (upload-*), metadata files (meta-*), OCI upload files being created (oci-upload-*). A
// process killed while it writes one (kill -9, OOM, power loss) leaves it there for ever,
// so garbage collection removes them; it must never remove one whose writer lives, on this
// replica or on another sharing the directory.
//
// The writer holds an exclusive flock(2) on its temporary file from just after creating
// it until it has renamed it away (or removed it); the kernel drops the lock when the
// process dies, however it dies. Garbage collection removes a file only while holding that
// lock itself, so it can take a file only from a dead writer. flock works across processes
// and, on Linux since 2.6.12, across NFS clients (emulated with byte-range locks).

// Temp is the directory where files are written before they are renamed into place
// (<blob-dir>/tmp). It must be on the file system of what they are renamed into.
type Temp struct {
	dir string
}

// NewTemp creates (if need be) and returns the temporary directory dir.
func NewTemp(dir string) (*Temp, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating the temporary directory: %w", err)
	}
	return &Temp{dir: dir}, nil
}

// Dir returns the directory.
func (t *Temp) Dir() string { return t.dir }

// Create creates a new file in the directory (os.CreateTemp's pattern) and takes its
// lock, which is held until the file is closed. On Linux the file is locked before it has
// a name. Elsewhere, between the creation and the lock a collection may take the new,
// unlocked file: the lock is then on a file that is no longer at its name, which is
// checked, and a new file is made (a collection running with no grace in a tight loop can
// win that race ten times over on a loaded machine; one with a grace cannot).
func (t *Temp) Create(pattern string) (*os.File, error) {
	if f, ok, err := createLockedAnonymous(t.dir, pattern); ok {
		return f, err
	}
	return t.createThenLock(pattern)
}

// createThenLock is Create where files cannot be made without a name.
func (t *Temp) createThenLock(pattern string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.CreateTemp(t.dir, pattern)
		if err != nil {
			return nil, err
		}
		ok, err := lockStillNamed(f, f.Name())
		if err != nil {
			f.Close()
			_ = os.Remove(f.Name())
			return nil, err
		}
		if ok {
			return f, nil
		}
		f.Close()
		if attempt == 9 {
			return nil, fmt.Errorf("creating a file in %s: it was removed before it could be locked, 10 times: is something else deleting files there?", t.dir)
		}
	}
}

// lockStillNamed takes f's lock and reports whether f is still the file at path.
func lockStillNamed(f *os.File, path string) (bool, error) {
	if err := lockFile(f); err != nil {
		return false, fmt.Errorf("locking %s: %w", path, err)
	}
	held, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	return os.SameFile(held, now), nil
}

// TempReport says what RemoveAbandoned removed (or would remove).
type TempReport struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Live counts files old enough to go whose writer still holds them.
	Live int `json:"live"`
}

// RemoveAbandoned removes the files of the directory that are older than grace and whose writer
// is gone (nobody holds their lock): what a process killed during an upload or a metadata
// write left. A file being written is never removed, whatever its age and whatever grace
// is, since its writer holds its lock (on systems without flock, only grace protects it).
// With dryRun it only counts. Errors name the file; files removed before one are counted.
func (t *Temp) RemoveAbandoned(grace time.Duration, now time.Time, dryRun bool) (TempReport, error) {
	var rep TempReport
	ents, err := os.ReadDir(t.dir)
	if errors.Is(err, os.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("listing %s: %w", t.dir, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < grace {
			continue // gone meanwhile (renamed into place), or young
		}
		p := filepath.Join(t.dir, e.Name())
		gone, err := removeIfUnlocked(p, dryRun)
		if err != nil {
			return rep, err
		}
		if !gone {
			rep.Live++
			continue
		}
		rep.Files++
		rep.Bytes += fi.Size()
	}
	return rep, nil
}

// removeIfUnlocked removes the file at p if nobody holds its lock, holding the lock itself
// while it removes it (a writer that has just created the file and not yet locked it then
// notices, in Create). It reports whether the file is gone (or, with dryRun,
// would be).
func removeIfUnlocked(p string, dryRun bool) (bool, error) {
	f, err := os.OpenFile(p, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // renamed into place meanwhile: not ours to count
	}
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", p, err)
	}
	defer f.Close()
	ok, err := tryLockFile(f)
	if err != nil {
		return false, fmt.Errorf("locking %s: %w", p, err)
	}
	if !ok {
		return false, nil // its writer is alive
	}
	// Names in tmp/ are never reused (random, or an upload ID), so the file at p is the
	// one locked; a writer finishing just now renamed it before we opened it.
	if dryRun {
		return true, nil
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("removing %s: %w", p, err)
	}
	return true, nil
}

// CheckWritable writes, and removes, a small file where every upload starts: it fails
// when the disk is full, the file system is read-only, permission is denied, or the
// directory is gone. Finished blobs in S3 are not checked.
func (t *Temp) CheckWritable() error {
	f, err := t.Create("readyz-*")
	if err != nil {
		return fmt.Errorf("creating a file in %s: %w", t.dir, err)
	}
	defer f.Close()
	defer os.Remove(f.Name())
	if _, err := f.Write([]byte("cairn readiness probe\n")); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("removing %s: %w", f.Name(), err)
	}
	return nil
}
