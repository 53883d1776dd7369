package blobstore_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/store/blobstore/storetest"
)

// newFS is a file system blob store in a test's directory; named makes every Put take
// the path of systems that cannot make files without a name.
func newFS(t *testing.T, named bool) *blobstore.FS {
	dir := t.TempDir()
	tmp, err := blobstore.NewTemp(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := blobstore.NewFS(dir, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if named {
		blobstore.NamedPutsOnly(fs)
	}
	return fs
}

func TestFSConformance(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Store { return newFS(t, named) })
		})
	}
}

// TestFSPutAgainRefreshesTime: a Put of a blob that is stored already places the new copy
// over it, so its time is the new upload's: collection keeps a file younger than its
// grace for a push that has not recorded it yet, and an old orphan that is uploaded again
// must not be collected between the Put and its row.
func TestFSPutAgainRefreshesTime(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) {
			fs := newFS(t, named)
			b := storetest.NewBlob(3000)
			for i := range 2 {
				if _, err := fs.Put(t.Context(), b.SHA256, bytes.NewReader(b.Data), 1<<20); err != nil {
					t.Fatalf("Put %d: %v", i, err)
				}
				p, err := fs.Path(b.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				info, err := fs.Stat(t.Context(), b.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Since(info.ModTime); d > time.Hour {
					t.Fatalf("after Put %d the blob's time is %v old", i, d)
				}
				old := time.Now().Add(-48 * time.Hour)
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
			}
			storetest.NoLeftovers(t, fs)
		})
	}
}
