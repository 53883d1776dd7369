// Package storetest is the conformance suite of blobstore.Content: every implementation
// (the file system, S3) runs it, and it fails on any state an operation leaves behind
// besides the blobs it stored (temporary files, partial objects, multipart uploads).
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store/blobstore"
)

// Store is what the suite runs against: a Content, and a way to see what it holds besides
// intact blobs.
type Store interface {
	blobstore.Content
	// Leftovers describes everything the store holds besides intact blobs (temporary
	// files, partial objects, unfinished multipart uploads); empty when there is none.
	Leftovers(ctx context.Context) ([]string, error)
}

// Run runs the suite. newStore returns a new, empty store for one subtest (it may share a
// server between calls, with a prefix each, as long as the stores do not see each other).
// Ingest is given files made in t.TempDir(), which must be on the file system of a store
// that renames.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"PutGetStat", testPutGetStat},
		{"Missing", testMissing},
		{"Refusals", testRefusals},
		{"PutAgain", testPutAgain},
		{"ConcurrentPutsOfOneDigest", testConcurrentPuts},
		{"Ranges", testRanges},
		{"Ingest", testIngest},
		{"Delete", testDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.run(t, s)
			NoLeftovers(t, s)
		})
	}
}

// NoLeftovers fails the test if s holds anything besides intact blobs.
func NoLeftovers(t *testing.T, s Store) {
	t.Helper()
	left, err := s.Leftovers(t.Context())
	if err != nil {
		t.Fatalf("listing what the store holds: %v", err)
	}
	for _, l := range left {
		t.Errorf("left behind: %s", l)
	}
}

// Blob is test content and its digests.
type Blob struct {
	Data           []byte
	SHA256, SHA512 string
}

// NewBlob returns n random bytes.
func NewBlob(n int) Blob {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return BlobOf(b)
}

// BlobOf returns b with its digests.
func BlobOf(b []byte) Blob {
	s256, s512 := sha256.Sum256(b), sha512.Sum512(b)
	return Blob{Data: b, SHA256: "sha256:" + hex.EncodeToString(s256[:]), SHA512: "sha512:" + hex.EncodeToString(s512[:])}
}

func put(t *testing.T, s Store, digest string, data []byte) {
	t.Helper()
	n, err := s.Put(t.Context(), digest, bytes.NewReader(data), int64(len(data)))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put %s: %d, %v; want %d bytes stored", digest, n, err, len(data))
	}
}

// read checks that digest holds data, through Stat, Exists and Open.
func read(t *testing.T, s Store, digest string, data []byte) {
	t.Helper()
	info, err := s.Stat(t.Context(), digest)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat %s: %+v, %v; want size %d", digest, info, err, len(data))
	}
	if d := time.Since(info.ModTime); d < -time.Minute || d > time.Minute {
		t.Errorf("Stat %s: time %v, %v from now", digest, info.ModTime, d)
	}
	if !blobstore.Exists(t.Context(), s, digest) {
		t.Fatalf("Exists %s: false after a Put", digest)
	}
	r, size, err := s.Open(t.Context(), digest)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Open %s: size %d, %v; want %d", digest, size, err, len(data))
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading %s: %d bytes, %v; want its %d bytes", digest, len(got), err, len(data))
	}
}

// absent checks that digest is not stored, as every method says it.
func absent(t *testing.T, s Store, digest string) {
	t.Helper()
	if _, err := s.Stat(t.Context(), digest); !errors.Is(err, fs.ErrNotExist) || api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("Stat of absent %s: %v; want fs.ErrNotExist and %s", digest, err, api.CodeNotFound)
	}
	if r, _, err := s.Open(t.Context(), digest); !errors.Is(err, fs.ErrNotExist) || api.CodeOf(err) != api.CodeNotFound {
		if r != nil {
			r.Close()
		}
		t.Fatalf("Open of absent %s: %v; want fs.ErrNotExist and %s", digest, err, api.CodeNotFound)
	}
	if blobstore.Exists(t.Context(), s, digest) {
		t.Fatalf("Exists of absent %s: true", digest)
	}
}

func testPutGetStat(t *testing.T, s Store) {
	b := NewBlob(100_000)
	put(t, s, b.SHA256, b.Data)
	read(t, s, b.SHA256, b.Data)
	// sha512 digests (OCI) are blobs of their own, beside sha256 ones.
	put(t, s, b.SHA512, b.Data)
	read(t, s, b.SHA512, b.Data)
	empty := BlobOf(nil)
	put(t, s, empty.SHA256, nil)
	read(t, s, empty.SHA256, nil)
}

func testMissing(t *testing.T, s Store) {
	b := NewBlob(10)
	absent(t, s, b.SHA256)
	absent(t, s, b.SHA512)
	if err := s.Delete(t.Context(), b.SHA256); err != nil {
		t.Fatalf("Delete of an absent blob: %v", err)
	}
	// A malformed digest is never a path or key: not found, or refused, never read.
	for _, d := range []string{"sha256:../../etc/passwd", "sha256:" + strings.Repeat("A", 64), "md5:00", ""} {
		if _, err := s.Stat(t.Context(), d); err == nil {
			t.Errorf("Stat of malformed digest %q: no error", d)
		}
		if r, _, err := s.Open(t.Context(), d); err == nil {
			r.Close()
			t.Errorf("Open of malformed digest %q: no error", d)
		}
		if err := s.Delete(t.Context(), d); err == nil {
			t.Errorf("Delete of malformed digest %q: no error", d)
		}
	}
}

// failingReader gives n bytes, then an error (a client that went away).
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset by the test")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func testRefusals(t *testing.T, s Store) {
	b := NewBlob(1000)
	for _, tc := range []struct {
		name   string
		digest string
		body   io.Reader
		max    int64
		code   api.Code
	}{
		{"wrong bytes", b.SHA256, bytes.NewReader(b.Data[1:]), 1 << 20, api.CodeDigestMismatch},
		{"wrong bytes sha512", b.SHA512, bytes.NewReader(append([]byte("x"), b.Data...)), 1 << 20, api.CodeDigestMismatch},
		{"one byte over the limit", b.SHA256, bytes.NewReader(b.Data), int64(len(b.Data)) - 1, api.CodeTooLarge},
		{"far over the limit", b.SHA256, bytes.NewReader(bytes.Repeat(b.Data, 100)), 4096, api.CodeTooLarge},
		{"malformed digest", "sha256:../../etc/passwd", bytes.NewReader(b.Data), 1 << 20, api.CodeBadRequest},
		{"unsupported algorithm", "md5:" + strings.Repeat("0", 32), bytes.NewReader(b.Data), 1 << 20, api.CodeBadRequest},
		{"body fails half-way", b.SHA256, &failingReader{n: 500}, 1 << 20, api.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.Put(t.Context(), tc.digest, tc.body, tc.max)
			if err == nil {
				t.Fatalf("Put stored %d bytes; want a refusal", n)
			}
			if api.CodeOf(err) != tc.code {
				t.Fatalf("Put: %v; want code %s", err, tc.code)
			}
			absent(t, s, b.SHA256)
			absent(t, s, b.SHA512)
			NoLeftovers(t, s)
		})
	}
	// At the limit exactly is accepted.
	n, err := s.Put(t.Context(), b.SHA256, bytes.NewReader(b.Data), int64(len(b.Data)))
	if err != nil || n != int64(len(b.Data)) {
		t.Fatalf("Put of a blob of exactly the limit: %d, %v", n, err)
	}
}

func testPutAgain(t *testing.T, s Store) {
	b := NewBlob(5000)
	put(t, s, b.SHA256, b.Data)
	put(t, s, b.SHA256, b.Data)
	read(t, s, b.SHA256, b.Data)
	// A refused second Put leaves the stored blob alone.
	if _, err := s.Put(t.Context(), b.SHA256, bytes.NewReader(b.Data[:10]), 1<<20); api.CodeOf(err) != api.CodeDigestMismatch {
		t.Fatalf("Put of other bytes under a stored digest: %v", err)
	}
	read(t, s, b.SHA256, b.Data)
}

// testConcurrentPuts: many Puts of one digest at once, some with the right bytes and some
// with wrong ones: every right one succeeds, every wrong one is refused, and the blob
// holds the right bytes.
func testConcurrentPuts(t *testing.T, s Store) {
	b := NewBlob(256 << 10)
	wrong := bytes.Clone(b.Data)
	wrong[len(wrong)/2] ^= 0xff
	const right, bad = 8, 4
	errs := make(chan error, right+bad)
	var wg sync.WaitGroup
	for i := range right + bad {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := b.Data
			if i >= right {
				data = wrong
			}
			n, err := s.Put(t.Context(), b.SHA256, bytes.NewReader(data), 1<<20)
			switch {
			case i < right && (err != nil || n != int64(len(b.Data))):
				errs <- fmt.Errorf("Put %d of the right bytes: %d, %w", i, n, err)
			case i >= right && api.CodeOf(err) != api.CodeDigestMismatch:
				errs <- fmt.Errorf("Put %d of wrong bytes: %v; want a digest mismatch", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	read(t, s, b.SHA256, b.Data)
}

// testRanges: Open seeks, and http.ServeContent answers Range requests from it.
func testRanges(t *testing.T, s Store) {
	b := NewBlob(3<<20 + 17)
	put(t, s, b.SHA256, b.Data)
	r, _, err := s.Open(t.Context(), b.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	size := int64(len(b.Data))
	for _, rg := range [][2]int64{{0, 10}, {1 << 20, 4096}, {size - 5, 5}, {7, 1}} {
		if pos, err := r.Seek(rg[0], io.SeekStart); err != nil || pos != rg[0] {
			t.Fatalf("Seek %d: %d, %v", rg[0], pos, err)
		}
		buf := make([]byte, rg[1])
		if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, b.Data[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("range %v: %v", rg, err)
		}
	}
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != size {
		t.Fatalf("Seek to the end: %d, %v", end, err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end: %d, %v; want io.EOF", n, err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f, _, err := s.Open(req.Context(), b.SHA256)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, req, "", time.Time{}, f)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		header     string
		start, end int64
	}{{"bytes=0-0", 0, 0}, {"bytes=1000-2047", 1000, 2047}, {"bytes=-100", size - 100, size - 1}, {fmt.Sprintf("bytes=%d-", size-3), size - 3, size - 1}} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
		req.Header.Set("Range", tc.header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, b.Data[tc.start:tc.end+1]) {
			t.Fatalf("Range %s: %d, %d bytes, %v; want 206 with bytes %d-%d", tc.header, resp.StatusCode, len(got), err, tc.start, tc.end)
		}
	}
}

func testIngest(t *testing.T, s Store) {
	b := NewBlob(70_000)
	dir := t.TempDir()
	path := filepath.Join(dir, "verified")
	if err := os.WriteFile(path, b.Data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := s.Ingest(t.Context(), "sha256:../../x", path); err == nil {
		t.Fatal("Ingest under a malformed digest: no error")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a refused Ingest removed the caller's file: %v", err)
	}
	if err := s.Ingest(t.Context(), b.SHA256, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Ingest left the file it took in: %v", err)
	}
	read(t, s, b.SHA256, b.Data)
	if err := s.Ingest(t.Context(), b.SHA512, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Ingest of a missing file: no error")
	}
	absent(t, s, b.SHA512)
}

func testDelete(t *testing.T, s Store) {
	keep, gone := NewBlob(100), NewBlob(100)
	put(t, s, keep.SHA256, keep.Data)
	put(t, s, gone.SHA256, gone.Data)
	if err := s.Delete(t.Context(), gone.SHA256); err != nil {
		t.Fatal(err)
	}
	absent(t, s, gone.SHA256)
	if err := s.Delete(t.Context(), gone.SHA256); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
	read(t, s, keep.SHA256, keep.Data)
	// Deleted, then stored again.
	put(t, s, gone.SHA256, gone.Data)
	read(t, s, gone.SHA256, gone.Data)
}
