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
// release file's row (so the derived manifest points a layer at their own blob) and,
// separately, the stored bytes of a release file: both are refused with exit 1 and
// nothing is written.
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

	// 1. The release's file row now names the attacker's blob, so the manifest the
	// registry derives from it (release manifests are not stored) lists that blob.
	ctx := context.Background()
	evil := []byte("malware of the same length as the second release!")[:len(w.f2.Content)]
	r.PutBlob(t, r.AdminToken, evil)
	tag, err := r.DB.Pool.Exec(ctx, `UPDATE release_files SET sha256 = $1 WHERE project = 'demo' AND version = '2.0.0'`, shaBytes(evil))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("forging the release's file: %v (%d rows)", err, tag.RowsAffected())
	}
	refused("forged manifest")
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE release_files SET sha256 = $1 WHERE project = 'demo' AND version = '2.0.0'`, shaBytes(w.f2.Content)); err != nil {
		t.Fatal(err)
	}

	// 2. The stored bytes of the release file are replaced.
	blob := filepath.Join(r.Dir, "blobs", "sha256", sha(w.f2.Content)[:2], sha(w.f2.Content))
	if err := os.WriteFile(blob, bytes.Repeat([]byte("X"), len(w.f2.Content)), 0o644); err != nil {
		t.Fatal(err)
	}
	refused("tampered layer")
}
