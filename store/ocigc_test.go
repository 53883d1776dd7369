package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/store/blobstore/storetest"
)

// TestOCIGarbageCollectionFollowsItsClock: the collection measures every age (upload
// sessions, links, blobs, upload files, temporary files) from its clock, never from the
// machine's or the database's: at the real time everything is young and kept; with the
// clock two hours on, the same collection takes all of it.
func TestOCIGarbageCollectionFollowsItsClock(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	blobs, err := blobstore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.OCIGarbageCollect(ctx, blobs, store.OCIGCOptions{}); err == nil || !strings.Contains(err.Error(), "no clock") {
		t.Fatalf("a collection without a clock: %v", err)
	}
	repo := "gcclock/" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	session, err := db.OCICreateUpload(ctx, repo, blobs.Uploads.Create)
	if err != nil {
		t.Fatal(err)
	}
	b := storetest.NewBlob(1000)
	err = db.OCILinkBlob(ctx, repo, b.SHA256, int64(len(b.Data)), func() error {
		_, err := blobs.Content.Put(ctx, b.SHA256, bytes.NewReader(b.Data), 1<<20)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	abandoned := filepath.Join(blobs.Temp.Dir(), "upload-abandoned")
	if err := os.WriteFile(abandoned, []byte("half"), 0o640); err != nil {
		t.Fatal(err)
	}

	opts := store.OCIGCOptions{Grace: time.Hour, UploadTTL: time.Hour}
	at := func(now time.Time) store.OCIGCReport {
		t.Helper()
		o := opts
		o.Now = func() time.Time { return now }
		rep, err := db.OCIGarbageCollect(ctx, blobs, o)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := at(time.Now()); rep.Sessions != 0 || rep.Links != 0 || len(rep.Blobs) != 0 || rep.TempFiles != 0 {
		t.Fatalf("collection now took young things: %+v", rep)
	}
	if !blobstore.Exists(ctx, blobs.Content, b.SHA256) {
		t.Fatal("the young blob is gone")
	}
	rep := at(time.Now().Add(2 * time.Hour))
	if rep.Sessions != 1 || rep.Links != 1 || !slices.Equal(rep.Blobs, []string{b.SHA256}) || rep.TempFiles != 1 {
		t.Fatalf("collection two hours on: %+v; want the session, the link, the blob and the temporary file", rep)
	}
	if blobstore.Exists(ctx, blobs.Content, b.SHA256) {
		t.Fatal("the collected blob's bytes are still stored")
	}
	for _, p := range []string{abandoned, filepath.Join(blobs.Dir, "uploads", session)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the collection: %v", p, err)
		}
	}
}
