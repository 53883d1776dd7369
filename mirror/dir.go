package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// InfoPath is where a mirror directory records the bundle it holds last: the Info of that
// bundle, read by 'cairn get --as-of-bundle' (served like the other files).
const InfoPath = "mirror/bundle.json"

// Dir is a mirror directory: DIR/metadata/… and DIR/targets/… under the URL paths cairnd
// serves (docs/static-tier.md), plus DIR/mirror/bundle.json. Writes go through Apply only.
type Dir struct{ root string }

// OpenDir returns the mirror directory at root, creating it (0755) if it does not exist.
func OpenDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("opening the mirror directory: no directory given")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("opening the mirror directory: %w", err)
	}
	return &Dir{root: root}, nil
}

// Root is the directory's path.
func (d *Dir) Root() string { return d.root }

// path maps a mirror path (already validated by CheckPath or a constant) to the disk.
func (d *Dir) path(p string) string { return filepath.Join(d.root, filepath.FromSlash(p)) }

// ReadFile reads the mirror file at p (a mirror path such as "metadata/root.json"),
// refusing more than max bytes. A missing file is an error satisfying errors.Is(err,
// fs.ErrNotExist).
func (d *Dir) ReadFile(p string, max int64) ([]byte, error) {
	f, err := os.Open(d.path(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading mirror file %s: %w", p, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("reading mirror file %s: more than %d bytes", p, max)
	}
	return b, nil
}

// Info returns the Info of the last bundle imported, or nil for an empty mirror.
func (d *Dir) Info() (*Info, error) {
	b, err := d.ReadFile(InfoPath, 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("reading %s: %w", InfoPath, err)
	}
	return &in, nil
}

// FileSHA256 returns the size and sha256 of the mirror file at p; ok is false if there
// is none.
func (d *Dir) FileSHA256(p string) (size int64, sum string, ok bool, err error) {
	f, err := os.Open(d.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("reading mirror file %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", false, fmt.Errorf("reading mirror file %s: %w", p, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), true, nil
}

// FileSize returns the size of the mirror file at p; ok is false if there is none.
func (d *Dir) FileSize(p string) (int64, bool) {
	st, err := os.Stat(d.path(p))
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	return st.Size(), true
}

// Apply writes a verified bundle into the directory: every file it does not hold yet
// (existing files are immutable by name and were compared by the verifier), then
// metadata/root.json (newestRoot), mirror/bundle.json and metadata/timestamp.json last,
// each through a synced temporary file renamed into place, so that a client reading the
// directory meanwhile never sees a timestamp whose snapshot is not there yet.
func (d *Dir) Apply(b *Bundle, newestRoot []byte) (written int, err error) {
	dirs := map[string]bool{}
	var timestamp *File
	for i, f := range b.Files {
		if f.Path == "metadata/timestamp.json" {
			timestamp = &b.Files[i]
			continue
		}
		if f.MediaType == MediaTypeAuditLog || f.MediaType == MediaTypeTlogEntry {
			continue // checked on import, not served
		}
		if f.MediaType == MediaTypeOCIRepository {
			continue // replaced below, with the files derived from it
		}
		if _, ok := d.FileSize(f.Path); ok {
			continue
		}
		if err := d.writeFrom(f, dirs); err != nil {
			return written, err
		}
		written++
	}
	if err := syncDirs(dirs); err != nil {
		return written, err
	}
	// OCI repositories: each record replaces the mirror's, with its derived files (tags
	// may move; a tag the record no longer has goes).
	served, err := OCIServed(b, d)
	if err != nil {
		return written, fmt.Errorf("deriving the mirror's OCI files: %w", err)
	}
	for _, f := range b.Files {
		if f.MediaType != MediaTypeOCIRepository {
			continue
		}
		repo, _, _, _ := OCIPath(f.Path)
		if old, err := d.ReadFile(f.Path, 1<<30); err == nil {
			if rec, err := ParseOCIRepository(old); err == nil {
				nb, _ := f.ReadAll(1 << 30)
				nrec, err := ParseOCIRepository(nb)
				if err != nil {
					return written, err
				}
				for t := range rec.Tags {
					if _, keep := nrec.Tags[t]; !keep && CheckOCITag(t) == nil {
						if err := os.Remove(d.path("v2/" + repo + "/manifests/" + t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
							return written, fmt.Errorf("removing the old tag %s:%s: %w", repo, t, err)
						}
					}
				}
			}
		}
		served = append(served, f)
	}
	for _, f := range served {
		if err := d.writeFrom(f, dirs); err != nil {
			return written, err
		}
		written++
	}
	if err := syncDirs(dirs); err != nil {
		return written, err
	}
	info, err := json.MarshalIndent(b.Info, "", "  ")
	if err != nil {
		return written, fmt.Errorf("encoding %s: %w", InfoPath, err)
	}
	for _, f := range []File{BytesFile("metadata/root.json", MediaTypeMetadata, newestRoot), BytesFile(InfoPath, "", info)} {
		if err := d.writeFrom(f, dirs); err != nil {
			return written, err
		}
	}
	if timestamp != nil {
		if err := d.writeFrom(*timestamp, dirs); err != nil {
			return written, err
		}
		written++
	}
	return written, syncDirs(dirs)
}

// writeFrom writes f at its path through a temporary file renamed into place.
func (d *Dir) writeFrom(f File, dirs map[string]bool) (err error) {
	dst := d.path(f.Path)
	dir := filepath.Dir(dst)
	if !strings.HasPrefix(dir, filepath.Clean(d.root)) {
		return fmt.Errorf("writing mirror file %s: outside the mirror directory", f.Path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	dirs[dir] = true
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".import-*")
	if err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(tmp, h), rc); err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	if f.SHA256 != "" && hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("writing mirror file %s: its bytes changed since they were verified", f.Path)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("writing mirror file %s: %w", f.Path, err)
	}
	return nil
}

func syncDirs(dirs map[string]bool) error {
	for dir := range dirs {
		f, err := os.Open(dir)
		if err != nil {
			return fmt.Errorf("syncing %s: %w", dir, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("syncing %s: %w", dir, err)
		}
		delete(dirs, dir)
	}
	return nil
}
