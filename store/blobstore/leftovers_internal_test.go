package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairn-dev/cairn/internal/s3test"
)

// The conformance suite is only as strict as Leftovers: each kind of leftover state, made
// by hand, is reported, and a store with only intact blobs reports nothing.
func TestLeftoversReported(t *testing.T) {
	intact := []byte("an intact blob")
	sum := sha256.Sum256(intact)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	other := sha256.Sum256([]byte("other"))
	otherHex := hex.EncodeToString(other[:])

	newFS := func(t *testing.T) *FS {
		dir := t.TempDir()
		tmp, err := NewTemp(filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewFS(dir, tmp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(t.Context(), digest, bytes.NewReader(intact), 1<<10); err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(t *testing.T, p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	fsCases := map[string]struct {
		make func(t *testing.T, b *FS)
		want string
	}{
		"nothing": {func(*testing.T, *FS) {}, ""},
		"temporary file": {func(t *testing.T, b *FS) {
			write(t, filepath.Join(b.tmp.Dir(), "upload-123"), []byte("half"))
		}, "temporary file"},
		"partial blob": {func(t *testing.T, b *FS) {
			write(t, filepath.Join(b.dir, "sha256", otherHex[:2], otherHex), []byte("oth"))
		}, "partial blob"},
		"misplaced file": {func(t *testing.T, b *FS) {
			write(t, filepath.Join(b.dir, "sha256", "zz", "notes.txt"), []byte("x"))
		}, "misplaced file"},
	}
	for name, tc := range fsCases {
		t.Run("fs/"+name, func(t *testing.T) {
			b := newFS(t)
			tc.make(t, b)
			checkLeftovers(t, b.Leftovers, tc.want)
		})
	}

	srv := s3test.Start(t)
	n := 0
	newS3 := func(t *testing.T) *S3 {
		n++
		tmp, err := NewTemp(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewS3(t.Context(), S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "leftovers" + strings.Repeat("x", n) + "/", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true}, tmp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(t.Context(), digest, bytes.NewReader(intact), 1<<10); err != nil {
			t.Fatal(err)
		}
		return c
	}
	putRaw := func(t *testing.T, c *S3, key string, b []byte) {
		t.Helper()
		if _, err := c.client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(c.prefix + key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	s3Cases := map[string]struct {
		make func(t *testing.T, c *S3)
		want string
	}{
		"nothing": {func(*testing.T, *S3) {}, ""},
		"temporary file": {func(t *testing.T, c *S3) {
			write(t, filepath.Join(c.tmp.Dir(), "upload-123"), []byte("half"))
		}, "temporary file"},
		"partial object":        {func(t *testing.T, c *S3) { putRaw(t, c, "sha256/"+otherHex, []byte("oth")) }, "partial object"},
		"key that is no digest": {func(t *testing.T, c *S3) { putRaw(t, c, "sha256/notes.txt", []byte("x")) }, "no digest"},
		"multipart upload": {func(t *testing.T, c *S3) {
			_, err := c.client.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String(c.bucket), Key: aws.String(c.prefix + "sha256/" + otherHex)})
			if err != nil {
				t.Fatal(err)
			}
		}, "multipart upload"},
	}
	for name, tc := range s3Cases {
		t.Run("s3/"+name, func(t *testing.T) {
			c := newS3(t)
			tc.make(t, c)
			checkLeftovers(t, c.Leftovers, tc.want)
		})
	}
}

func checkLeftovers(t *testing.T, leftovers func(context.Context) ([]string, error), want string) {
	t.Helper()
	got, err := leftovers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want == "" {
		if len(got) != 0 {
			t.Fatalf("a store of intact blobs reports %q", got)
		}
		return
	}
	if len(got) != 1 || !strings.Contains(got[0], want) {
		t.Fatalf("Leftovers: %q, want one saying %q", got, want)
	}
}
