package blobstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/store/blobstore"
)

// startLivePut starts an upload of content that has sent half its bytes and waits for the
// rest; it returns a function that sends the rest and the upload's result.
func startLivePut(t *testing.T, b *blobstore.Store, content []byte, named bool) func() error {
	t.Helper()
	sum := sha256.Sum256(content)
	pr, pw := io.Pipe()
	res := make(chan error, 1)
	go func() {
		_, err := b.Content.Put(context.Background(), "sha256:"+hex.EncodeToString(sum[:]), pr, 1<<20)
		res <- err
	}()
	half := len(content) / 2
	if _, err := pw.Write(content[:half]); err != nil {
		t.Fatal(err)
	}
	if named {
		// The pipe hands the bytes over synchronously, but the file is written after: wait.
		waitFor(t, "the live upload's temporary file", func() bool {
			return len(tmpFiles(t, b, func(name string, size int64) bool { return strings.HasPrefix(name, "upload-") && size == int64(half) })) == 1
		})
	}
	return func() error {
		if _, err := pw.Write(content[half:]); err != nil {
			return err
		}
		pw.Close()
		return <-res
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// tmpFiles lists the names of the files in <blob dir>/tmp that keep says to.
func tmpFiles(t *testing.T, b *blobstore.Store, keep func(name string, size int64) bool) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(b.Dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		fi, err := e.Info()
		if err == nil && keep(e.Name(), fi.Size()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestAbandonedTempFilesCollectedLiveKept: the files a killed writer left in tmp/ (an
// upload, a metadata file, an OCI upload being created) are removed by collection, even
// with no grace; the file of an upload in progress is not, however old it looks, and that
// upload completes. Where uploads are received into files without a name (Linux), a live
// upload has no file in tmp/ at all: collection finds only the abandoned ones.
func TestAbandonedTempFilesCollectedLiveKept(t *testing.T) {
	old := time.Now().Add(-48 * time.Hour)
	for _, named := range []bool{true, false} {
		for _, tc := range []struct {
			name      string
			grace     time.Duration
			dryRun    bool
			wantFiles int // of the 3 abandoned files
			wantLeft  int // abandoned files still there after
			wantLive  int // with a named upload file
		}{
			{"no grace", 0, false, 3, 0, 1},
			{"grace shorter than their age", time.Hour, false, 3, 0, 1},
			{"dry run", 0, true, 3, 3, 1},
			{"grace longer than their age", 72 * time.Hour, false, 0, 3, 0},
		} {
			t.Run(fmt.Sprintf("%s/named=%v", tc.name, named), func(t *testing.T) {
				b, err := blobstore.OpenDir(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				if named {
					blobstore.NamedPutsOnly(b.Content)
				}
				abandoned := []string{"upload-1234567", "meta-7654321", "oci-upload-" + strings.Repeat("ab", 16)}
				for _, n := range abandoned {
					p := filepath.Join(b.Dir, "tmp", n)
					if err := os.WriteFile(p, []byte("half of something "+n), 0o640); err != nil {
						t.Fatal(err)
					}
					if err := os.Chtimes(p, old, old); err != nil {
						t.Fatal(err)
					}
				}
				content := bytes.Repeat([]byte("live upload "), 1000)
				finish := startLivePut(t, b, content, named)
				live := tmpFiles(t, b, func(n string, _ int64) bool { return strings.HasPrefix(n, "upload-") && n != abandoned[0] })
				wantLive := tc.wantLive
				if !named {
					if len(live) != 0 {
						t.Fatalf("an upload received into an unnamed file shows in tmp/ as %v", live)
					}
					wantLive = 0
				} else if err := os.Chtimes(filepath.Join(b.Dir, "tmp", live[0]), old, old); err != nil {
					// It looks abandoned too: old, and not written to for a while.
					t.Fatal(err)
				}

				rep, err := b.Temp.RemoveAbandoned(tc.grace, time.Now(), tc.dryRun)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Files != tc.wantFiles || rep.Live != wantLive {
					t.Errorf("report %+v, want %d files removed and %d in use", rep, tc.wantFiles, wantLive)
				}
				left := tmpFiles(t, b, func(n string, _ int64) bool { return !slices.Contains(live, n) })
				if len(left) != tc.wantLeft {
					t.Errorf("abandoned files left: %v, want %d", left, tc.wantLeft)
				}
				if named {
					if got := tmpFiles(t, b, func(n string, _ int64) bool { return n == live[0] }); len(got) != 1 {
						t.Fatalf("the live upload's file %s was removed", live[0])
					}
				}
				if err := finish(); err != nil {
					t.Fatalf("the live upload failed after collection: %v", err)
				}
				sum := sha256.Sum256(content)
				if !blobstore.Exists(context.Background(), b.Content, "sha256:"+hex.EncodeToString(sum[:])) {
					t.Fatal("the live upload completed but its blob is not stored")
				}
			})
		}
	}
}

// TestCollectionDuringUploadsNeverBreaksThem: collection with no grace runs over and over
// while uploads and metadata writes come and go; every one of them succeeds (a file is
// never taken from a live writer, not even in the instant between its creation and its
// lock), and nothing is left in tmp/.
func TestCollectionDuringUploadsNeverBreaksThem(t *testing.T) {
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) { collectDuringUploads(t, named) })
	}
}

func collectDuringUploads(t *testing.T, named bool) {
	b, err := blobstore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if named {
		blobstore.NamedPutsOnly(b.Content)
	}
	stop := make(chan struct{})
	gcDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				gcDone <- nil
				return
			default:
			}
			if _, err := b.Temp.RemoveAbandoned(0, time.Now(), false); err != nil {
				gcDone <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				content := fmt.Appendf(nil, "blob %d of writer %d", i, w)
				sum := sha256.Sum256(content)
				if _, err := b.Content.Put(context.Background(), "sha256:"+hex.EncodeToString(sum[:]), bytes.NewReader(content), 1<<20); err != nil {
					errs <- fmt.Errorf("upload %d of writer %d: %w", i, w, err)
				}
				if err := b.Meta.WriteMeta(context.Background(), sum[:], content, true); err != nil {
					errs <- fmt.Errorf("metadata %d of writer %d: %w", i, w, err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-gcDone; err != nil {
		t.Fatalf("collection: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left := tmpFiles(t, b, func(string, int64) bool { return true }); len(left) != 0 {
		t.Errorf("left in tmp/: %v", left)
	}
}
