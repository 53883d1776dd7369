package blobstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Both ways of making a temporary file give a file in tmp/, named from the pattern, that
// collection cannot take while it is open, and can once it is closed.
func TestLockedTempFilesResistCollection(t *testing.T) {
	b, err := NewTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		create func(pattern string) (*os.File, error)
	}{
		{"Create", b.Create},
		{"createThenLock", b.createThenLock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.create("probe-*.part")
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Base(f.Name())
			if filepath.Dir(f.Name()) != b.Dir() || !strings.HasPrefix(base, "probe-") || !strings.HasSuffix(base, ".part") {
				t.Fatalf("file %s: want probe-*.part in %s", f.Name(), b.Dir())
			}
			if _, err := f.WriteString("x"); err != nil {
				t.Fatal(err)
			}
			rep, err := b.RemoveAbandoned(0, time.Now().Add(time.Hour), false)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Live != 1 || rep.Files != 0 {
				t.Fatalf("collection with the writer alive: %+v, want 1 live and none removed", rep)
			}
			if _, err := os.Stat(f.Name()); err != nil {
				t.Fatalf("the live file was taken: %v", err)
			}
			f.Close()
			rep, err = b.RemoveAbandoned(0, time.Now().Add(time.Hour), false)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Files != 1 {
				t.Fatalf("collection after the writer closed: %+v, want 1 removed", rep)
			}
		})
	}
}
