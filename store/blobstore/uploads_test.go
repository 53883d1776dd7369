package blobstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store/blobstore"
)

// TestUploadHashState: chunks hashed as they arrive give the digest without a re-read; a
// stale or damaged state file, a refused chunk and sha512 fall back to hashing the file.
func TestUploadHashState(t *testing.T) {
	b, err := blobstore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	d256, d512 := "sha256:"+hex.EncodeToString(s256[:]), "sha512:"+hex.EncodeToString(s512[:])

	upload := func(id string, damage func(state string)) {
		t.Helper()
		if err := b.Uploads.Create(id); err != nil {
			t.Fatal(err)
		}
		size := int64(0)
		for i := 0; i < len(data); i += 10000 {
			end := min(i+10000, len(data))
			// Each chunk in a request of its own: the lock is taken and released.
			s, err := b.Uploads.Lock(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			n, h, err := s.Append(size, bytes.NewReader(data[i:end]), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			s.SaveHash(n, h)
			s.Close()
			size = n
		}
		if damage != nil {
			damage(filepath.Join(b.Dir, "uploads", id+".sha256"))
		}
	}
	check := func(id, digest string) {
		t.Helper()
		s, err := b.Uploads.Lock(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n, err := s.Commit(t.Context(), digest, nil)
		if err != nil || n != int64(len(data)) {
			t.Fatalf("commit %s: %d %v", digest, n, err)
		}
		f, _, err := b.Content.Open(t.Context(), digest)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var got bytes.Buffer
		_, _ = got.ReadFrom(f)
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatal("stored bytes differ")
		}
		if err := b.Content.Delete(t.Context(), digest); err != nil {
			t.Fatal(err)
		}
	}
	upload("00000000000000000000000000000001", nil)
	check("00000000000000000000000000000001", d256)
	upload("00000000000000000000000000000002", func(st string) { _ = os.WriteFile(st, []byte("garbage state"), 0o600) })
	check("00000000000000000000000000000002", d256)
	upload("00000000000000000000000000000003", func(st string) { _ = os.Remove(st) })
	check("00000000000000000000000000000003", d256)
	upload("00000000000000000000000000000004", nil)
	check("00000000000000000000000000000004", d512)

	// A wrong digest leaves the upload as it was; a refused chunk is cut off and the state
	// still describes the recorded size, so the upload completes correctly afterwards.
	id := "00000000000000000000000000000005"
	upload(id, nil)
	s, err := b.Uploads.Lock(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(t.Context(), "sha256:"+hex.EncodeToString(make([]byte, 32)), nil); api.CodeOf(err) != api.CodeDigestMismatch {
		t.Fatalf("wrong digest: %v", err)
	}
	if _, _, err := s.Append(int64(len(data)), bytes.NewReader(make([]byte, 2<<20)), 1<<20); api.CodeOf(err) != api.CodeTooLarge {
		t.Fatalf("over-limit chunk: %v", err)
	}
	n, _, err := s.Append(int64(len(data)), bytes.NewReader([]byte("extra")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(int64(len(data))); err != nil || n != int64(len(data))+5 {
		t.Fatal(err)
	}
	s.Close()
	check(id, d256)
	if files, _ := filepath.Glob(filepath.Join(b.Dir, "uploads", "*")); len(files) != 0 {
		t.Errorf("upload files left behind: %v", files)
	}
}

// TestUploadLockFollowsContext: a request waiting for a session that another request is
// writing gives up when its context ends, saying why, and changes nothing; a waiter whose
// context lives gets the lock once the writer is done; a session that ended is
// fs.ErrNotExist.
func TestUploadLockFollowsContext(t *testing.T) {
	b, err := blobstore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := "000000000000000000000000000000aa"
	if err := b.Uploads.Create(id); err != nil {
		t.Fatal(err)
	}
	writer, err := b.Uploads.Lock(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := writer.Append(0, bytes.NewReader([]byte("first chunk")), 1<<20); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		is   error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			s, err := b.Uploads.Lock(ctx, id)
			if err == nil {
				s.Close()
				t.Fatal("took the lock of a session another request holds")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), "another request is writing") {
				t.Fatalf("waiter: %v; want %v and a message that says another request is writing", err, tc.is)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("the waiter gave up %v after its context ended", d)
			}
		})
	}

	got := make(chan error, 1)
	go func() {
		s, err := b.Uploads.Lock(t.Context(), id)
		if err == nil {
			var n int64
			n, _, err = s.Append(11, bytes.NewReader([]byte(", second")), 1<<20)
			if err == nil && n != 19 {
				err = fmt.Errorf("size %d after the second chunk, want 19", n)
			}
			s.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("the second writer ran while the first held the lock: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	writer.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the lock after the writer released it")
	}
	if data, err := os.ReadFile(filepath.Join(b.Dir, "uploads", id)); err != nil || string(data) != "first chunk, second" {
		t.Fatalf("upload holds %q, %v", data, err)
	}
	if err := b.Uploads.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Uploads.Lock(t.Context(), id); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("locking an ended session: %v", err)
	}
}
