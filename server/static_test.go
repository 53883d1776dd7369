package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A --static-dir that cannot be written stops cairnd at start, naming the directory.
func TestPrepareStaticDir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(base, "read-only")
	if err := os.MkdirAll(filepath.Join(readOnly, "metadata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(readOnly, "targets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(readOnly, "metadata"), 0o555); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, dir, err string
	}{
		{"new directory", filepath.Join(base, "new", "static"), ""},
		{"a file", file, "a-file"},
		{"read-only metadata", readOnly, "not writable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "read-only metadata" && os.Geteuid() == 0 {
				t.Skip("root writes into read-only directories")
			}
			err := prepareStaticDir(tt.dir)
			switch {
			case tt.err == "" && err != nil:
				t.Fatal(err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			case tt.err == "":
				for _, d := range []string{"metadata", "targets"} {
					if st, err := os.Stat(filepath.Join(tt.dir, d)); err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
						t.Errorf("%s: %v %v", d, st, err)
					}
				}
				if entries, _ := os.ReadDir(filepath.Join(tt.dir, "metadata")); len(entries) != 0 {
					t.Errorf("the writability probe left %d files", len(entries))
				}
			}
		})
	}
}

// Old snapshots leave the static directory --snapshot-retention after a newer head
// replaced them, as their bytes leave the database; the head and every other file stay.
func TestStaticPruneOldSnapshots(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	files := []string{"3.snapshot.json", "4.snapshot.json", "4.snapshot.json.gz", "5.snapshot.json", "3.demo.json"}
	for _, tt := range []struct {
		name      string
		retention time.Duration
		at        []time.Duration // prune passes, after t0
		left      []string
	}{
		{"within retention", time.Hour, []time.Duration{0, 30 * time.Minute}, files},
		{"past retention", time.Hour, []time.Duration{0, 61 * time.Minute}, []string{"5.snapshot.json", "3.demo.json"}},
		{"first seen late", time.Hour, []time.Duration{61 * time.Minute}, files},
		{"retention 0 keeps every snapshot", 0, []time.Duration{0, 1000 * time.Hour}, files},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := benchServer(t)
			s.cfg.SnapshotRetention = tt.retention
			s.cache.Head().snapshot.version = 5
			dir := t.TempDir()
			meta := filepath.Join(dir, "metadata")
			if err := os.MkdirAll(meta, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(meta, f), []byte("{}"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			e := &staticExport{s: s, dir: dir, snapshots: []staticSnapshot{{version: 3}, {version: 4}, {version: 5}}}
			for _, d := range tt.at {
				e.prune(context.Background(), t0.Add(d))
			}
			var left []string
			for _, f := range files {
				if _, err := os.Stat(filepath.Join(meta, f)); err == nil {
					left = append(left, f)
				}
			}
			if strings.Join(left, " ") != strings.Join(tt.left, " ") {
				t.Errorf("left %v, want %v", left, tt.left)
			}
		})
	}
}
