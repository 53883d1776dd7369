package blobstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/s3test"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/store/blobstore/storetest"
)

// TestS3Conformance runs the suite against versitygw, one prefix of one bucket per
// subtest.
func TestS3Conformance(t *testing.T) {
	srv := s3test.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T) storetest.Store {
		n++
		c, err := blobstore.NewS3(t.Context(), blobstore.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: fmt.Sprintf("t%d/", n), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true}, newTemp(t))
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

func TestS3Content(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c, err := blobstore.NewS3(ctx, blobstore.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "cairn/", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true}, newTemp(t))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+17)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if _, err := c.Stat(ctx, digest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat of a missing blob: %v", err)
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Ingest(ctx, digest, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("Ingest left the local file")
	}
	if info, err := c.Stat(ctx, digest); err != nil || info.Size != int64(len(data)) || info.ModTime.IsZero() {
		t.Fatalf("Stat: %+v %v", info, err)
	}
	r, size, err := c.Open(ctx, digest)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Open: %d %v", size, err)
	}
	defer r.Close()
	all, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("read %d bytes, %v", len(all), err)
	}
	// Ranges, as http.ServeContent asks for them.
	for _, rg := range [][2]int64{{0, 10}, {1 << 20, 4096}, {int64(len(data)) - 5, 5}} {
		if _, err := r.Seek(rg[0], io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, rg[1])
		if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, data[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("range %v: %v", rg, err)
		}
	}
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Fatalf("seek to end: %d %v", end, err)
	}
	if err := c.Delete(ctx, digest); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, digest); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	if _, err := c.Stat(ctx, digest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat after Delete: %v", err)
	}
}

// A blob directory with an S3 bucket: release files go through the local temporary
// directory, are checked, and end up in the bucket only; nothing stays on the local disk.
func TestBlobsOnS3(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	b, err := blobstore.Open(ctx, dir, &blobstore.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	c := b.Content
	if _, local := b.Local(); local {
		t.Fatal("a store with a bucket says its blobs are local")
	}
	data := []byte("a release file stored in S3")
	sum := sha256.Sum256(data)
	h := "sha256:" + hex.EncodeToString(sum[:])
	if _, err := c.Put(ctx, h, bytes.NewReader([]byte("other bytes")), 1<<20); err == nil {
		t.Fatal("a blob that does not hash to its digest was stored")
	}
	if blobstore.Exists(ctx, c, h) {
		t.Fatal("the refused blob exists")
	}
	if n, err := c.Put(ctx, h, bytes.NewReader(data), 1<<20); err != nil || n != int64(len(data)) {
		t.Fatalf("Put: %d %v", n, err)
	}
	if !blobstore.Exists(ctx, c, h) {
		t.Fatal("the stored blob does not exist")
	}
	if info, err := c.Stat(ctx, h); err != nil || info.Size != int64(len(data)) {
		t.Fatalf("not in the bucket: %+v %v", info, err)
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file left on the local disk: %s", p)
		}
		return nil
	})
	f, _, err := c.Open(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %q", got)
	}
	if err := c.Delete(ctx, h); err != nil || blobstore.Exists(ctx, c, h) {
		t.Fatalf("Delete: %v", err)
	}
}

func TestS3ContentRefusals(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		cfg  blobstore.S3Config
		want string
	}{
		"no bucket":         {blobstore.S3Config{Endpoint: srv.Endpoint}, "needs a bucket"},
		"prefix without /":  {blobstore.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "x"}, "must end in /"},
		"missing bucket":    {blobstore.S3Config{Endpoint: srv.Endpoint, Bucket: "nope", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true}, `bucket "nope"`},
		"wrong secret":      {blobstore.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: "s3cr3t-wrong-value", PathStyle: true}, "not reachable"},
		"nothing listening": {blobstore.S3Config{Endpoint: "http://127.0.0.1:1", Bucket: srv.Bucket, AccessKey: "a", SecretKey: "b", PathStyle: true}, "127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := blobstore.NewS3(ctx, tc.cfg, newTemp(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatal("the error quotes the secret")
			}
		})
	}
	c, err := blobstore.NewS3(ctx, blobstore.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true}, newTemp(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ingest(ctx, "sha256:../../etc", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("a bad digest was accepted as an object key")
	}
}

func newTemp(t *testing.T) *blobstore.Temp {
	t.Helper()
	tmp, err := blobstore.NewTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}
