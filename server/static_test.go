package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
