package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommittedTablesMatchRegistry fails when api/openapi.yaml or README.md has an
// error-code table that is not what api.Registry gives, naming the command that fixes it.
func TestCommittedTablesMatchRegistry(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := run(root, false); err != nil {
		t.Error(err)
	}
}

// TestRunRewritesAStaleTable: a table edited by hand is found by the check and put back
// by -w, leaving the rest of the file as it was.
func TestRunRewritesAStaleTable(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tb := range tables() {
		raw, err := os.ReadFile(filepath.Join(root, tb.file))
		if err != nil {
			t.Fatal(err)
		}
		// Change one generated row, as a hand edit (or a registry change) would.
		stale := strings.Replace(string(raw), "| `not_found` | 404 |", "| `not_found` | 410 |", 1)
		if stale == string(raw) {
			t.Fatalf("%s: found no not_found row to break", tb.file)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, tb.file)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tb.file), []byte(stale), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = run(dir, false)
	if err == nil || !strings.Contains(err.Error(), Regenerate) {
		t.Fatalf("check of stale tables: %v, want an error naming %q", err, Regenerate)
	}
	if err := run(dir, true); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables() {
		want, _ := os.ReadFile(filepath.Join(root, tb.file))
		got, _ := os.ReadFile(filepath.Join(dir, tb.file))
		if string(got) != string(want) {
			t.Errorf("%s after -w differs from the committed file", tb.file)
		}
	}
}

// TestSpliceRefusesMissingMarkers: without its markers a file is refused, not appended to.
func TestSpliceRefusesMissingMarkers(t *testing.T) {
	for _, tb := range tables() {
		for name, src := range map[string]string{
			"none":      "text\n",
			"no end":    tb.begin + "\n",
			"reversed":  tb.end + "\n" + tb.begin + "\n",
			"two begin": tb.begin + "\n" + tb.begin + "\n" + tb.end + "\n",
		} {
			if out, err := tb.splice([]byte(src)); err == nil {
				t.Errorf("%s, %s: spliced into %q", tb.file, name, out)
			}
		}
	}
}
