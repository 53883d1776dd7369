package blobstore_test

import (
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/store/blobstore/storetest"
)

func TestFSConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		dir := t.TempDir()
		tmp, err := blobstore.NewTemp(filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := blobstore.NewFS(dir, tmp)
		if err != nil {
			t.Fatal(err)
		}
		return fs
	})
}
