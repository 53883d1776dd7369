package blobstore

import (
	"context"
	"errors"
	"fmt"
	"github.com/cairn-dev/cairn/api"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is Content on a file system: blobs live at <dir>/<algorithm>/<first two hex>/<hex>,
// written through a locked file of tmp and renamed into place only once their digest has
// been checked, so a reader never sees a partial blob. A blob is synced, renamed, and its
// directory synced (grouped, dirSyncer) before Put or Ingest returns: the caller records
// it next, and a blob a role references must survive a crash under its name as well as its
// bytes.
type FS struct {
	dir string
	tmp *Temp
	// dirs makes each blob's rename durable before Put returns (grouped fsyncs).
	dirs dirSyncer
	// unnamed: Put may receive into a file without a name (createUnnamed), since
	// /proc/self/fd names it for linkUnnamed.
	unnamed bool
}

// NewFS creates the directories of a blob store under dir; tmp must be on the same file
// system.
func NewFS(dir string, tmp *Temp) (*FS, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o750); err != nil {
		return nil, fmt.Errorf("creating blob directory: %w", err)
	}
	_, procErr := os.Stat("/proc/self/fd")
	return &FS{dir: dir, tmp: tmp, unnamed: procErr == nil}, nil
}

// Path returns where the blob of a valid digest is (or would be) stored: for a hard link
// to it (static export), never for writing.
func (b *FS) Path(digest string) (string, error) {
	dg, err := api.ParseDigest(digest)
	algo, sum := dg.Algorithm, dg.Hex
	if err != nil {
		return "", err
	}
	return filepath.Join(b.dir, algo, sum[:2], sum), nil
}

// Put implements Content. Where the file system makes files without a name (Linux's
// O_TMPFILE), the blob is received into one and linked straight into place once it is
// synced: one link instead of a temporary name, a rename, an unlink and two stats (7% of
// cairnd's CPU in a profile of BENCHMARKS.md run 20), and a crash before it leaves
// nothing behind.
func (b *FS) Put(ctx context.Context, digest string, r io.Reader, max int64) (int64, error) {
	if b.unnamed {
		// A digest that cannot name a blob is refused before a file is made for it.
		if _, err := api.ParseDigest(digest); err != nil {
			return 0, badDigest(err)
		}
		f, ok, err := createUnnamed(b.tmp.dir)
		if err != nil {
			return 0, fmt.Errorf("creating temporary blob: %w", err)
		}
		if ok {
			defer f.Close()
			return b.putUnnamed(ctx, digest, f, r, max)
		}
	}
	got, err := receive(b.tmp, digest, r, max)
	if err != nil {
		return 0, err
	}
	defer got.discard() // after a rename, removes nothing
	if err := got.f.Sync(); err != nil {
		return 0, fmt.Errorf("syncing blob: %w", err)
	}
	// Placed before it is closed: closing drops the lock that keeps collection away.
	if err := b.Ingest(ctx, digest, got.f.Name()); err != nil {
		return 0, err
	}
	got.placed = true
	return got.size, nil
}

// putUnnamed is Put through f, a file createUnnamed made.
func (b *FS) putUnnamed(ctx context.Context, digest string, f *os.File, r io.Reader, max int64) (int64, error) {
	size, _, err := receiveInto(f, digest, r, max)
	if err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("syncing blob: %w", err)
	}
	dst, err := b.Path(digest)
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(dst)
	err = linkUnnamed(f, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err := b.makeDir(ctx, dir); err != nil {
			return 0, err
		}
		err = linkUnnamed(f, dst)
	}
	if errors.Is(err, fs.ErrExist) {
		// Stored already. Placed again as the named path does (a locked temporary name,
		// then a rename over it), so that the file's time is this upload's: collection
		// keeps a file younger than its grace for a push that has not recorded it yet
		// (DB.OCIGarbageCollect).
		if err := b.replaceWith(ctx, digest, f); err != nil {
			return 0, err
		}
		return size, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storing blob: %w", err)
	}
	if err := b.dirs.Sync(ctx, dir); err != nil {
		return 0, fmt.Errorf("storing blob: %w", err)
	}
	return size, nil
}

// replaceWith renames f, an unnamed file, over the blob digest through a locked name in
// the temporary directory.
func (b *FS) replaceWith(ctx context.Context, digest string, f *os.File) error {
	name, err := b.tmp.nameLocked(f, "upload-*")
	if err != nil {
		return fmt.Errorf("storing blob: %w", err)
	}
	if err := b.Ingest(ctx, digest, name); err != nil {
		_ = os.Remove(name)
		return err
	}
	return nil
}

// makeDir creates a blob's fan-out directory, its name made durable.
func (b *FS) makeDir(ctx context.Context, dir string) error {
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
	return nil
}

// Ingest implements Content: a rename into place, made durable.
func (b *FS) Ingest(ctx context.Context, digest, path string) error {
	dst, err := b.Path(digest)
	if err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	err = os.Rename(path, dst)
	if errors.Is(err, fs.ErrNotExist) {
		// Only the fan-out directory can be missing: path is the caller's, and held.
		if err := b.makeDir(ctx, dir); err != nil {
			return err
		}
		err = os.Rename(path, dst)
	}
	if err != nil {
		return fmt.Errorf("storing blob: %w", err)
	}
	if err := b.dirs.Sync(ctx, dir); err != nil {
		return fmt.Errorf("storing blob: %w", err)
	}
	return nil
}

// Stat implements Content.
func (b *FS) Stat(ctx context.Context, digest string) (Info, error) {
	p, err := b.Path(digest)
	if err != nil {
		return Info{}, notStored(digest, err)
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, notStored(digest, err)
	}
	if err != nil {
		return Info{}, fmt.Errorf("looking up blob %s: %w", digest, err)
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open implements Content; the reader is an *os.File.
func (b *FS) Open(ctx context.Context, digest string) (io.ReadSeekCloser, int64, error) {
	p, err := b.Path(digest)
	if err != nil {
		return nil, 0, notStored(digest, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, notStored(digest, err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("opening blob %s: %w", digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("opening blob %s: %w", digest, err)
	}
	return f, fi.Size(), nil
}

// Delete implements Content.
func (b *FS) Delete(ctx context.Context, digest string) error {
	p, err := b.Path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing blob %s: %w", digest, err)
	}
	return nil
}

// Leftovers lists what the store holds besides intact blobs: files in its temporary
// directory, and files under the blob tree whose name is not a digest or whose bytes do not
// hash to it (a partial blob). It reads every blob: for tests and for checks an operator
// asks for, not for serving.
func (b *FS) Leftovers(ctx context.Context) ([]string, error) {
	out, err := tempLeftovers(b.tmp)
	if err != nil {
		return nil, err
	}
	for _, algo := range api.DigestAlgorithms() {
		root := filepath.Join(b.dir, algo)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			if err != nil || d.IsDir() {
				return err
			}
			name := d.Name()
			digest := algo + ":" + name
			if want, _ := b.Path(digest); want != p {
				out = append(out, "misplaced file "+p)
				return nil
			}
			if err := checkBytes(ctx, b, digest); err != nil {
				out = append(out, fmt.Sprintf("partial blob %s: %v", p, err))
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("listing blobs: %w", err)
		}
	}
	return out, nil
}

// checkBytes reads a stored blob and checks that it hashes to its digest.
func checkBytes(ctx context.Context, c Content, digest string) error {
	dg, err := api.ParseDigest(digest)
	algo, sum := dg.Algorithm, dg.Hex
	if err != nil {
		return err
	}
	r, _, err := c.Open(ctx, digest)
	if err != nil {
		return err
	}
	defer r.Close()
	h := api.Digest{Algorithm: algo}.Hash()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != sum {
		return fmt.Errorf("its bytes hash to %s:%s", algo, got)
	}
	return nil
}

// tempLeftovers lists the files of a temporary directory.
func tempLeftovers(t *Temp) ([]string, error) {
	ents, err := os.ReadDir(t.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %w", t.dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, "temporary file "+filepath.Join(t.dir, e.Name()))
	}
	return out, nil
}

var _ Content = (*FS)(nil)
