package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestResolveDirs(t *testing.T) {
	tests := []struct {
		vars map[string]string
		want Dirs
	}{
		{map[string]string{"CAIRN_HOME": "/c", "XDG_DATA_HOME": "/d", "HOME": "/h"}, Dirs{"/c", "/c", "/c"}},
		{map[string]string{"XDG_CONFIG_HOME": "/x", "XDG_DATA_HOME": "/d", "XDG_CACHE_HOME": "/k", "HOME": "/h"}, Dirs{"/x/cairn", "/d/cairn", "/k/cairn"}},
		{map[string]string{"HOME": "/h"}, Dirs{"/h/.config/cairn", "/h/.local/share/cairn", "/h/.cache/cairn"}},
		// The XDG specification: a relative path is invalid and ignored.
		{map[string]string{"XDG_DATA_HOME": "rel", "XDG_CACHE_HOME": "rel", "HOME": "/h"}, Dirs{"/h/.config/cairn", "/h/.local/share/cairn", "/h/.cache/cairn"}},
	}
	for _, tt := range tests {
		got, err := ResolveDirs(func(k string) string { return tt.vars[k] })
		if err != nil || got != tt.want {
			t.Errorf("ResolveDirs(%v) = %+v, %v; want %+v", tt.vars, got, err, tt.want)
		}
	}
}

// xdgCLI is a cli whose directories come from XDG_* variables (no CAIRN_HOME).
func xdgCLI(t *testing.T) (*cli, Dirs) {
	t.Helper()
	c := newCLI(t)
	base := t.TempDir()
	delete(c.vars, "CAIRN_HOME")
	c.vars["XDG_CONFIG_HOME"] = filepath.Join(base, "config")
	c.vars["XDG_DATA_HOME"] = filepath.Join(base, "data")
	c.vars["XDG_CACHE_HOME"] = filepath.Join(base, "cache")
	d, err := ResolveDirs(func(k string) string { return c.vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.home = d.Config
	return c, d
}

// Keys go to the data directory, TUF metadata to the cache directory; the keys and the
// metadata of the old layout (both in the config directory) are moved there, and work.
func TestXDGDirectoriesAndMigration(t *testing.T) {
	srv, c := maintainer(t) // with CAIRN_HOME
	c.ok("upload", "widget", "1.0", writeFile(t, t.TempDir(), "w.tar.gz", "one"), "--key", "alice")

	// The same files, laid out as an older cairn laid them in ~/.config/cairn.
	x, d := xdgCLI(t)
	x.vars["CAIRN_TOKEN"] = srv.Token
	if err := os.CopyFS(d.Config, os.DirFS(c.home)); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(d.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = rootPath(d.Config, cfg.Server)
	if err := SaveConfig(d.Config, cfg); err != nil {
		t.Fatal(err)
	}
	oldMeta := MetadataDir(d.Config, srv.URL)
	if _, err := os.Stat(filepath.Join(oldMeta, "timestamp.json")); err != nil {
		t.Fatalf("the old layout has no cached metadata: %v", err)
	}
	// A key of the same name, but other bytes, already in the new place stays apart.
	if err := os.MkdirAll(filepath.Join(d.Data, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.Data, "keys"), "bob.json", `{"not":"bob"}`)

	r := x.run("key", "list")
	if r.code == 0 {
		t.Fatalf("key list with a damaged bob.json in the data directory succeeded: %s", r.stdout)
	}
	if !strings.Contains(r.stderr, "moved 1 key file(s) from "+filepath.Join(d.Config, "keys")+" to "+filepath.Join(d.Data, "keys")) ||
		!strings.Contains(r.stderr, "bob.json was not moved") {
		t.Fatalf("key list stderr = %q", r.stderr)
	}
	st, err := os.Stat(filepath.Join(d.Data, "keys", "alice.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("moved key: %v, %v; want mode 0600", err, st)
	}
	if _, err := os.Stat(filepath.Join(d.Config, "keys", "alice.json")); !os.IsNotExist(err) {
		t.Errorf("alice.json is still in the old place (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(d.Config, "keys", "bob.json")); err != nil {
		t.Errorf("bob.json, not moved, is gone from the old place: %v", err)
	}
	os.Remove(filepath.Join(d.Data, "keys", "bob.json"))

	r = x.run("upload", "widget", "2.0", writeFile(t, t.TempDir(), "w.tar.gz", "two"), "--key", "alice")
	if r.code != 0 {
		t.Fatalf("upload with the moved key and metadata: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "moved the TUF metadata of "+srv.URL) {
		t.Errorf("upload stderr = %q; want the metadata move noted", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(MetadataDir(d.Cache, srv.URL), "timestamp.json")); err != nil {
		t.Errorf("no metadata in the cache directory: %v", err)
	}
	if _, err := os.Stat(oldMeta); !os.IsNotExist(err) {
		t.Errorf("the old metadata directory remains (%v)", err)
	}
	// New keys go to the data directory; nothing is noted once the move is done.
	r = x.run("key", "generate", "--name", "carol")
	if r.code != 0 || !strings.Contains(r.stdout, filepath.Join(d.Data, "keys", "carol.json")) || strings.Contains(r.stderr, "moved") {
		t.Fatalf("key generate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// A write that fails midway (here: a file size limit, as a full disk does) leaves no
// partial key, no temporary file, and the files it was to replace as they were.
func TestFailedWritesLeaveNoPartialFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses ulimit")
	}
	srv, c := loggedOutMaintainer(t)
	keys := filepath.Join(c.home, "keys")
	st, err := os.Stat(filepath.Join(keys, "alice.json"))
	if err != nil {
		t.Fatal(err)
	}
	// ulimit -f 1 allows 512 bytes: a key file and a root must be larger for the writes to
	// fail midway, or this test checks nothing.
	if st.Size() <= 512 || len(srv.Root()) <= 512 {
		t.Fatalf("a key file has %d bytes, the root %d: the 512-byte limit would not cut them", st.Size(), len(srv.Root()))
	}
	limited := func(args ...string) (string, error) {
		cmd := c.cairnCmd()
		cmd.Path = "/bin/sh"
		cmd.Args = append([]string{"sh", "-c", `ulimit -f 1 && exec "$0" "$@"`, os.Args[0]}, args...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	snapshot := func() map[string][]byte {
		m := map[string][]byte{}
		filepath.WalkDir(c.home, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && !strings.Contains(p, string(filepath.Separator)+"metadata"+string(filepath.Separator)) {
				m[p], _ = os.ReadFile(p)
			}
			return nil
		})
		return m
	}
	before := snapshot()

	out, err := limited("key", "generate", "--name", "big")
	if err == nil || !strings.Contains(out, "file too large") {
		t.Fatalf("key generate under a 512-byte file limit: %v\n%s", err, out)
	}
	other := writeFile(t, t.TempDir(), "root.json", string(srv.Root()))
	out, err = limited("init", "--server", "http://127.0.0.2:1", "--root", other)
	if err == nil || !strings.Contains(out, "file too large") {
		t.Fatalf("init under a 512-byte file limit: %v\n%s", err, out)
	}

	after := snapshot()
	for p, b := range after {
		if old, ok := before[p]; !ok {
			t.Errorf("a failed write left %s (%d bytes)", p, len(b))
		} else if !bytes.Equal(old, b) {
			t.Errorf("a failed write changed %s", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("a failed write removed %s", p)
		}
	}
}
