package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/s3test"
	"github.com/cairn-dev/cairn/store"
)

func TestS3Content(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c, err := store.NewS3Content(ctx, store.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "cairn/", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true})
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
	if n, err := c.Stat(ctx, digest); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat: %d %v", n, err)
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
	var listed []string
	if err := c.Walk(ctx, func(d string, n int64) error { listed = append(listed, d); return nil }); err != nil || len(listed) != 1 || listed[0] != digest {
		t.Fatalf("Walk: %v %v", listed, err)
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

func TestS3ContentRefusals(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		cfg  store.S3Config
		want string
	}{
		"no bucket":         {store.S3Config{Endpoint: srv.Endpoint}, "needs a bucket"},
		"prefix without /":  {store.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "x"}, "must end in /"},
		"missing bucket":    {store.S3Config{Endpoint: srv.Endpoint, Bucket: "nope", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true}, `bucket "nope"`},
		"wrong secret":      {store.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: "s3cr3t-wrong-value", PathStyle: true}, "not reachable"},
		"nothing listening": {store.S3Config{Endpoint: "http://127.0.0.1:1", Bucket: srv.Bucket, AccessKey: "a", SecretKey: "b", PathStyle: true}, "127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := store.NewS3Content(ctx, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatal("the error quotes the secret")
			}
		})
	}
	c, err := store.NewS3Content(ctx, store.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ingest(ctx, "sha256:../../etc", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("a bad digest was accepted as an object key")
	}
}
