package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// BenchmarkUploadState reads what an upload of a project with 100 published files is
// validated against: "remembered" when the files of its current role are cached (every
// upload after the first on a publishing replica), "read" when PostgreSQL sends them all
// (every upload before the cache).
func BenchmarkUploadState(b *testing.B) {
	db := open(b)
	ctx := context.Background()
	const project, files = "bench-upload-state", 100
	raw := []byte(`{"signed":{},"signatures":[]}`)
	sum := sha256.Sum256(raw)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO projects (name, canonical_name, delegator, threshold, keys, keyids, role_version) VALUES ($1, $1, 'recently-claimed', 1, '{}', '{k}', 7) ON CONFLICT DO NOTHING`, []any{project}},
		{`INSERT INTO metadata (role, version, raw, length, sha256, expires, action) VALUES ($1, 7, $2, $3, $4, $5, 'accepted') ON CONFLICT DO NOTHING`, []any{project, raw, len(raw), sum[:], time.Now().Add(time.Hour)}},
	} {
		if _, err := db.Pool.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO metadata (role, version, raw, length, sha256, expires, action) SELECT $1, g, $2, $3, $4, $5, $$accepted$$ FROM generate_series(1, 6) g ON CONFLICT DO NOTHING`, project, raw, len(raw), sum[:], time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	for i := range files {
		path := fmt.Sprintf("%s/1.0.%d/file.bin", project, i)
		fsum := sha256.Sum256([]byte(path))
		if _, err := db.Pool.Exec(ctx, `INSERT INTO release_files (path, project, version, filename, length, sha256, role_version) VALUES ($1, $2, $3, 'file.bin', 1024, $4, 7) ON CONFLICT DO NOTHING`,
			path, project, fmt.Sprintf("1.0.%d", i), fsum[:]); err != nil {
			b.Fatal(err)
		}
	}
	// One new file, as an upload adds, whose blob validation looks up.
	newPath := project + "/2.0/file.bin"
	newSum := sha256.Sum256([]byte(newPath))
	newHex := fmt.Sprintf("%x", newSum)
	if _, err := db.RecordBlob(ctx, newHex, 1024); err != nil {
		b.Fatal(err)
	}
	b.Run("remembered+BlobSizes", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			st, err := db.UploadState(ctx, project)
			if err != nil || len(st.Files) != files {
				b.Fatalf("%d files, %v", len(st.Files), err)
			}
			if sizes, err := db.BlobSizes(ctx)([]string{newHex}); err != nil || sizes[newHex] != 1024 {
				b.Fatalf("blob sizes %v, %v", sizes, err)
			}
		}
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	})
	b.Run("remembered,blobs-in-query", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			st, blobs, err := db.UploadStateWithBlobs(ctx, project, []string{newPath}, [][]byte{newSum[:]})
			if err != nil || len(st.Files) != files {
				b.Fatalf("%d files, %v", len(st.Files), err)
			}
			if sizes, err := blobs([]string{newHex}); err != nil || sizes[newHex] != 1024 {
				b.Fatalf("blob sizes %v, %v", sizes, err)
			}
		}
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	})
	for _, mode := range []string{"remembered", "read"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				if mode == "read" {
					db.ForgetFileLists()
				}
				st, err := db.UploadState(ctx, project)
				if err != nil || len(st.Files) != files {
					b.Fatalf("%d files, %v", len(st.Files), err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
