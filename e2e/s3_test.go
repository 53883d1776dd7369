package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/s3test"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/internal/tufjs"
)

// TestReleasesOnS3: with --blob-s3-bucket, release files live in the bucket (a real
// versitygw) and nowhere on the server's disk; go-tuf, tuf-js and cairn download them
// verified; and an object changed in the bucket is refused like a tampered file.
func TestReleasesOnS3(t *testing.T) {
	srv := s3test.Start(t)
	w := newWorldWith(t, func(c *daemon.Config) {
		c.BlobS3Endpoint, c.BlobS3Bucket, c.BlobS3Prefix, c.BlobS3PathStyle = srv.Endpoint, srv.Bucket, "cairn/", true
		c.BlobS3AccessKey, c.BlobS3SecretKey = srv.AccessKey, srv.SecretKey
	})
	var local []string
	_ = filepath.WalkDir(filepath.Join(w.r.Dir, "blobs", "sha256"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			local = append(local, p)
		}
		return nil
	})
	if len(local) != 0 {
		t.Fatalf("release files on the local disk with S3 configured: %v", local)
	}
	object := filepath.Join(srv.Root, srv.Bucket, "cairn", "sha256", sha(w.f2.Content))
	if b, err := os.ReadFile(object); err != nil || !bytes.Equal(b, w.f2.Content) {
		t.Fatalf("the release file is not the bucket's object %s: %v", object, err)
	}
	cs := clients(t, w.r)
	for _, c := range cs {
		for _, f := range []testrepo.File{w.f1, w.f2} {
			got, err := c.get(t, f.Path)
			if err != nil || !bytes.Equal(got, f.Content) {
				t.Fatalf("%s: %s: %q %v", c.name, f.Path, got, err)
			}
		}
	}
	if err := os.WriteFile(object, bytes.Repeat([]byte("X"), len(w.f2.Content)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients(t, w.r) {
		checkRefused(t, c, w.f2.Path, refusal{isHashMismatch, tufjs.ExitHashMismatch, 1})
	}
}
