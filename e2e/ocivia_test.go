package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/daemon"
)

// TestGetViaOCI: `cairn get --via oci` pulls a release over the OCI Distribution API and
// accepts it only if the manifest the tag resolves to is the one the TUF-verified release
// implies and every layer matches the signed hashes. The attacker rewrites the stored
// release manifest (pointing a layer at their own blob) and, separately, the stored bytes
// of a release file: both are refused with exit 1 and nothing is written.
func TestGetViaOCI(t *testing.T) {
	w := newWorldWith(t, func(c *daemon.Config) { c.OCIAnonymousPull = true })
	r := w.r
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, r.RootJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	cl := newCLI(t, "")
	cl.ok(t, "init", "--server", r.URL, "--root", rootFile)

	out := t.TempDir()
	code, _, errs := cl.run(t, "get", "demo@2.0.0", "--via", "oci", "-o", out)
	if code != 0 || !strings.Contains(errs, "Pulled over OCI: demo:2.0.0 is sha256:") {
		t.Fatalf("get --via oci: exit %d: %s", code, errs)
	}
	got, err := os.ReadFile(filepath.Join(out, "demo-2.0.0.tar.gz"))
	if err != nil || !bytes.Equal(got, w.f2.Content) {
		t.Fatalf("pulled %q, %v", got, err)
	}

	refused := func(name string) {
		t.Helper()
		dir := t.TempDir()
		code, _, errs := cl.run(t, "get", "demo@2.0.0", "--via", "oci", "-o", dir)
		if code != 1 {
			t.Fatalf("%s: exit %d, want 1 (hash mismatch): %s", name, code, errs)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%s: %d files written although verification failed", name, len(entries))
		}
		t.Logf("%s: %s", name, strings.TrimSpace(errs))
	}

	// 1. The stored manifest now lists the attacker's blob as the release file.
	ctx := context.Background()
	evil := []byte("malware of the same length as the second release!")[:len(w.f2.Content)]
	r.PutBlob(t, r.AdminToken, evil)
	var raw []byte
	if err := r.DB.Pool.QueryRow(ctx, `SELECT raw FROM oci_manifests WHERE repo = 'demo' AND release AND raw::text LIKE '%' || encode(convert_to('2.0.0', 'UTF8'), 'hex') || '%'`).Scan(&raw); err != nil {
		t.Fatalf("finding the release manifest: %v", err)
	}
	forged := bytes.Replace(raw, []byte(sha(w.f2.Content)), []byte(sha(evil)), 1)
	if bytes.Equal(forged, raw) {
		t.Fatal("could not forge the manifest")
	}
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE oci_manifests SET raw = $1 WHERE repo = 'demo' AND raw = $2`, forged, raw); err != nil {
		t.Fatal(err)
	}
	refused("forged manifest")
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE oci_manifests SET raw = $1 WHERE repo = 'demo' AND raw = $2`, raw, forged); err != nil {
		t.Fatal(err)
	}

	// 2. The stored bytes of the release file are replaced.
	blob := filepath.Join(r.Dir, "blobs", "sha256", sha(w.f2.Content)[:2], sha(w.f2.Content))
	if err := os.WriteFile(blob, bytes.Repeat([]byte("X"), len(w.f2.Content)), 0o644); err != nil {
		t.Fatal(err)
	}
	refused("tampered layer")
}
