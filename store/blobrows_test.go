package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Concurrent PUTs share rounds of blob rows: every row is written with its size, each
// digest is reported created exactly once (also when two PUTs of the same bytes share a
// round), and a row recorded before is not created again.
func TestRecordBlobGrouped(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	sum := func(i int) string {
		s := sha256.Sum256([]byte(fmt.Sprintf("grouped blob %d %s", i, t.Name())))
		return hex.EncodeToString(s[:])
	}
	if created, err := db.RecordBlob(ctx, sum(0), 100); err != nil || !created {
		t.Fatalf("recording blob 0 alone: created %v, %v", created, err)
	}
	const distinct, callers = 12, 60
	var mu sync.Mutex
	createdBy := map[string]int{}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := c % distinct
			created, err := db.RecordBlobGrouped(ctx, sum(i), int64(100+i))
			if err != nil {
				t.Errorf("recording blob %d: %v", i, err)
				return
			}
			if created {
				mu.Lock()
				createdBy[sum(i)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range distinct {
		want := 1
		if i == 0 {
			want = 0 // recorded before the rounds
		}
		if got := createdBy[sum(i)]; got != want {
			t.Errorf("blob %d reported created %d times, want %d", i, got, want)
		}
		size, ok, err := db.BlobSize(ctx, sum(i))
		if err != nil || !ok || size != int64(100+i) {
			t.Errorf("blob %d: row size %d, recorded %v, %v; want %d", i, size, ok, err, 100+i)
		}
	}
	if _, err := db.RecordBlobGrouped(ctx, "not hex", 1); err == nil {
		t.Error("a digest that is not hex was recorded")
	}
}

// BenchmarkRecordBlobParallel records new blob rows from 32 goroutines at once, as 32
// uploaders' PUTs do: "autocommit" is one INSERT and commit per row (RecordBlob),
// "grouped" shares them (RecordBlobGrouped). ns/op is wall time per row, cpu-µs/op this
// process's CPU per row; PostgreSQL's CPU is not in it (the load harness measures that).
func BenchmarkRecordBlobParallel(b *testing.B) {
	db := open(b)
	ctx := context.Background()
	for _, mode := range []string{"autocommit", "grouped"} {
		b.Run(mode, func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(16) // 32 goroutines on 2 CPUs
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s := sha256.Sum256([]byte(fmt.Sprintf("%s %s %d", b.Name(), mode, n.Add(1))))
					sum := hex.EncodeToString(s[:])
					var err error
					if mode == "grouped" {
						_, err = db.RecordBlobGrouped(ctx, sum, 1024)
					} else {
						_, err = db.RecordBlob(ctx, sum, 1024)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is this process's user and system CPU time, for benchmarks that report the
// CPU a change saves on cairnd's side (PostgreSQL's is measured by the load harness).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
