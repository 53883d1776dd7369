package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDirSyncerGroupsCallers(t *testing.T) {
	var calls atomic.Int64
	s := &dirSyncer{sync: func(string) error {
		calls.Add(1)
		time.Sleep(5 * time.Millisecond) // a disk flush
		return nil
	}}
	const callers = 64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Sync(context.Background(), []string{"a", "b"}[i%2])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Every caller was served after its call began; 64 callers on two directories
	// needed far fewer syncs than 64.
	if n := calls.Load(); n < 1 || n >= callers/2 {
		t.Fatalf("%d directory syncs for %d callers on 2 directories", n, callers)
	}
}

func TestDirSyncerReportsErrorsAndContext(t *testing.T) {
	boom := errors.New("disk gone")
	s := &dirSyncer{sync: func(dir string) error {
		if dir == "bad" {
			return boom
		}
		return nil
	}}
	if err := s.Sync(context.Background(), "bad"); !errors.Is(err, boom) {
		t.Fatalf("sync of a failing directory: %v", err)
	}
	if err := s.Sync(context.Background(), "good"); err != nil {
		t.Fatalf("sync after a failure: %v", err)
	}
	block := make(chan struct{})
	slow := &dirSyncer{sync: func(string) error { <-block; return nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := slow.Sync(ctx, "d"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sync with an ended context: %v", err)
	}
	close(block)
}

// BenchmarkBlobPutParallel is the blob PUT's storage cost with 32 concurrent uploads of
// 1 KiB: file fsync, rename, and the directory fsync, grouped (dirSyncer) or one per Put;
// "none" skips the directory fsync, as Put did before it was added.
func BenchmarkBlobPutParallel(b *testing.B) {
	for _, mode := range []string{"none", "grouped", "per-put"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			tmp, err := NewTemp(dir + "/tmp")
			if err != nil {
				b.Fatal(err)
			}
			bs, err := NewFS(dir, tmp)
			if err != nil {
				b.Fatal(err)
			}
			var syncs atomic.Int64
			bs.dirs.sync = func(dir string) error { syncs.Add(1); return syncDir(dir) }
			if mode == "none" {
				// Before: the rename was not made durable at all.
				bs.dirs.sync = func(string) error { return nil }
				bs.dirs.perCall = true
			}
			if mode == "per-put" {
				// Every Put syncs its own directory: no round to join.
				bs.dirs.perCall = true
			}
			b.SetParallelism(16) // 32 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 1024)
				for pb.Next() {
					_, _ = rand.Read(buf)
					sum := sha256.Sum256(buf)
					if _, err := bs.Put(context.Background(), "sha256:"+hex.EncodeToString(sum[:]), bytes.NewReader(buf), 1<<20); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(syncs.Load())/float64(b.N), "dirsyncs/op")
		})
	}
}
