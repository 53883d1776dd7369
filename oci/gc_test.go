package oci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// TestGarbageCollection runs `cairnd gc` on a registry holding an unreferenced blob, a
// referenced one, an open upload session, a release file and an orphaned upload file:
// --dry-run changes nothing; a real run removes exactly the garbage; a grace period
// protects what is young.
func TestGarbageCollection(t *testing.T) {
	dbu := privateDB(t)
	r := testrepo.Boot(t, dbu, func(c *daemon.Config) { c.OCIAnonymousPull = true })
	base, admin := r.URL, "basic:"+r.AdminToken
	garbage := pushBlob(t, base, "g/x", admin, []byte("nobody references me"))
	layer, config := []byte("a referenced layer"), []byte(`{"os":"linux"}`)
	pushBlob(t, base, "g/x", admin, layer)
	cfg := pushBlob(t, base, "g/x", admin, config)
	if p := do(t, base, req{method: "PUT", path: "/v2/g/x/manifests/v1", auth: admin, body: imageManifest(cfg, len(config), layer), header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}}); p.status != 201 {
		t.Fatalf("manifest: %d %s", p.status, p.body)
	}
	s := do(t, base, req{method: "POST", path: "/v2/g/x/blobs/uploads/", auth: admin})
	do(t, base, req{method: "PATCH", path: s.header.Get("Location"), auth: admin, body: []byte("half an upload")})
	// A release file that was also pushed over OCI, then unlinked: the file must stay.
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	rel := testrepo.File{Path: "gproj/1.0/gproj.tar.gz", Content: []byte("a release file")}
	publishRelease(t, r, key, "gproj", 2, rel)
	shared := pushBlob(t, base, "g/y", admin, rel.Content)
	if d := do(t, base, req{method: "DELETE", path: "/v2/g/y/blobs/" + shared, auth: admin}); d.status != 202 {
		t.Fatalf("unlinking: %d %s", d.status, d.body)
	}
	orphan := filepath.Join(r.Config.BlobDir, "uploads", "00000000000000000000000000000000")
	if err := os.WriteFile(orphan, []byte("crash leftovers"), 0o600); err != nil {
		t.Fatal(err)
	}

	gc := func(args ...string) store.OCIGCReport {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"gc", "--database-url", dbu, "--blob-dir", r.Config.BlobDir, "--log-level", "warn"}, args...)
		if code := daemon.Main(context.Background(), args, &out, &errb, func(string) string { return "" }); code != 0 {
			t.Fatalf("cairnd %v: exit %d: %s", args, code, errb.String())
		}
		var rep store.OCIGCReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("gc report: %v: %s", err, out.String())
		}
		return rep
	}
	before := state(t, r)
	if rep := gc("--grace", "0s", "--upload-ttl", "0s", "--dry-run"); !rep.DryRun || !slices.Contains(rep.Blobs, garbage) || rep.Sessions != 1 {
		t.Fatalf("dry run report: %+v", rep)
	}
	if state(t, r) != before {
		t.Fatal("--dry-run changed the state")
	}
	// Young garbage is protected by the default grace period.
	if rep := gc(); len(rep.Blobs) != 0 || rep.Sessions != 0 || rep.UploadFiles != 0 || rep.Links != 0 {
		t.Fatalf("gc within the grace period removed: %+v", rep)
	}
	rep := gc("--grace", "0s", "--upload-ttl", "0s")
	if !slices.Equal(rep.Blobs, []string{garbage}) || rep.Sessions != 1 || rep.UploadFiles != 1 || rep.KeptFiles != 1 {
		t.Fatalf("gc report: %+v", rep)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphaned upload file survived: %v", err)
	}
	for d, want := range map[string]bool{garbage: false, sha(layer): true, cfg: true, shared: true} {
		path := filepath.Join(r.Config.BlobDir, "sha256", d[7:9], d[7:])
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("blob %s: present=%v, want %v", d, err == nil, want)
		}
	}
	if g := do(t, base, req{method: "GET", path: "/v2/g/x/manifests/v1"}); g.status != 200 {
		t.Errorf("the manifest broke: %d", g.status)
	}
	if g := do(t, base, req{method: "GET", path: "/v2/g/x/blobs/" + sha(layer)}); g.status != 200 {
		t.Errorf("a referenced blob went: %d", g.status)
	}
	if g := do(t, base, req{method: "GET", path: "/targets/" + rel.Path[:len("gproj/1.0/")] + sha(rel.Content)[7:] + ".gproj.tar.gz"}); g.status != 200 {
		t.Errorf("the release file went: %d", g.status)
	}
	// Pushing the collected blob again works.
	pushBlob(t, base, "g/x", admin, []byte("nobody references me"))
}
