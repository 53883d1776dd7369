package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Where cairn keeps its files, following the XDG base directory specification (on every
// platform, as gh and helm's plugins do, so that one set of variables works everywhere):
//
//	config  $XDG_CONFIG_HOME/cairn  (~/.config/cairn)       config.json, the pinned roots, credentials.json
//	data    $XDG_DATA_HOME/cairn    (~/.local/share/cairn)  keys/: the encrypted signing keys
//	cache   $XDG_CACHE_HOME/cairn   (~/.cache/cairn)        metadata/: verified TUF metadata per server
//
// $CAIRN_HOME puts all three in one directory, as before there were three.
//
// Releases before this layout kept keys/ and metadata/ in the config directory. Without
// $CAIRN_HOME, the first command that opens the key store or a server's metadata moves
// them over (migrateKeys, migrateMetadata) and says so on stderr.

// Dirs are cairn's three directories.
type Dirs struct {
	Config, Data, Cache string
}

// ResolveDirs finds cairn's directories from the environment (see above).
func ResolveDirs(env func(string) string) (Dirs, error) {
	if h := env("CAIRN_HOME"); h != "" {
		return Dirs{h, h, h}, nil
	}
	config, err := HomeDir(env)
	if err != nil {
		return Dirs{}, err
	}
	base := func(xdg, fallback string) (string, error) {
		if x := env(xdg); x != "" && filepath.IsAbs(x) {
			return filepath.Join(x, "cairn"), nil // the spec: a relative path is ignored
		}
		h := env("HOME")
		if h == "" {
			var err error
			if h, err = os.UserHomeDir(); err != nil {
				return "", fmt.Errorf("finding cairn's %s directory: set CAIRN_HOME or %s: %w", fallback, xdg, err)
			}
		}
		return filepath.Join(h, fallback, "cairn"), nil
	}
	data, err := base("XDG_DATA_HOME", filepath.Join(".local", "share"))
	if err != nil {
		return Dirs{}, err
	}
	cache, err := base("XDG_CACHE_HOME", ".cache")
	if err != nil {
		return Dirs{}, err
	}
	return Dirs{config, data, cache}, nil
}

func (a *app) dirs() (Dirs, error) { return ResolveDirs(a.env) }

// migrateKeys moves key files from the config directory's keys/ (the old place) to the
// data directory's. A key is copied with writeFileExclusive (synced, never half-written,
// never over a key of the same name) before the old file is removed, so a crash leaves it
// in one place or both, never in neither; a name taken in the new place with other bytes
// is left in the old place, with a warning.
func (a *app) migrateKeys(d Dirs) {
	oldDir, newDir := filepath.Join(d.Config, "keys"), filepath.Join(d.Data, "keys")
	if oldDir == newDir {
		return
	}
	entries, err := os.ReadDir(oldDir)
	if err != nil {
		return // nothing there (or unreadable: the old place is then not ours to fix)
	}
	moved := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		src, dst := filepath.Join(oldDir, e.Name()), filepath.Join(newDir, e.Name())
		b, err := os.ReadFile(src)
		if err != nil {
			a.notef("warning: could not move key file %s to %s: %v\n", src, newDir, err)
			continue
		}
		if err := writeFileExclusive(dst, b, 0o600); err != nil {
			if have, rerr := os.ReadFile(dst); rerr != nil || !bytes.Equal(have, b) {
				a.notef("warning: key file %s was not moved to %s (%v): a key of that name is already there; compare them, keep one\n", src, newDir, err)
				continue
			}
		}
		if err := os.Remove(src); err != nil {
			a.notef("warning: key file %s was copied to %s but not removed: %v\n", src, newDir, err)
			continue
		}
		moved++
	}
	if moved > 0 {
		syncDir(oldDir)
		os.Remove(oldDir) // only if empty
		a.notef("note: moved %d key file(s) from %s to %s (keys now live in the XDG data directory)\n", moved, oldDir, newDir)
	}
}

// migrateMetadata moves a server's cached TUF metadata from the config directory (the
// old place) to the cache directory. The metadata is what rollback protection compares
// with, so it is moved rather than dropped; if it cannot be moved (another file system),
// the next refresh starts again from the pinned root.
func (a *app) migrateMetadata(d Dirs, server string) {
	oldDir, newDir := MetadataDir(d.Config, server), MetadataDir(d.Cache, server)
	if oldDir == newDir {
		return
	}
	if _, err := os.Stat(oldDir); err != nil {
		return
	}
	if _, err := os.Stat(newDir); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err := os.MkdirAll(filepath.Dir(newDir), 0o700); err != nil {
		return
	}
	if err := os.Rename(oldDir, newDir); err != nil {
		a.notef("note: could not move the TUF metadata of %s from %s to %s (%v); it is fetched again and verified from the pinned root\n", server, oldDir, newDir, err)
		return
	}
	os.Remove(filepath.Dir(oldDir)) // only if empty
	a.notef("note: moved the TUF metadata of %s from %s to %s (the XDG cache directory)\n", server, oldDir, newDir)
}

// writeFileAtomic replaces path with data, durably and all at once: the bytes go to a
// temporary file in the same directory, which is synced, renamed over path, and the
// directory synced. A crash or a failed write (a full disk, a file size limit) leaves the
// old file as it was, or the new one whole, and no temporary file once the error is
// returned.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeFileExclusive is writeFileAtomic for a file that must not exist yet (a new key):
// the synced temporary file is hard-linked to path, which fails if path exists, so a key
// is never overwritten and never seen half-written. The error wraps fs.ErrExist when path
// exists.
func writeFileExclusive(path string, data []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("writing %s: %w", path, fs.ErrExist)
	} else if err != nil {
		// A file system without hard links (FAT, some network shares): create it
		// exclusively and write it in place, removing it if the write fails.
		return writeInPlaceExclusive(path, data, mode)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func writeInPlaceExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes data to a new temporary file beside path, with mode set before any
// byte is written, and syncs it. On error nothing is left behind.
func writeTemp(path string, data []byte, mode os.FileMode) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Name(), nil
}

// syncDir makes a rename or link in dir durable. Windows cannot open a directory for
// syncing and orders it itself; there it is a no-op.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
