package oci_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// publishRelease creates project (if new) and publishes role version v with files.
func publishRelease(t *testing.T, r *testrepo.Repo, key *testrepo.Key, project string, v int64, files ...testrepo.File) {
	t.Helper()
	if v == 2 {
		r.CreateProject(t, r.AdminToken, project, 1, []*testrepo.Key{key}, key)
	}
	for _, f := range files {
		r.PutBlob(t, r.AdminToken, f.Content)
	}
	resp := r.Submit(t, r.AdminToken, project, testrepo.Sign(t, testrepo.Role(v, time.Now().Add(30*24*time.Hour), files...), key))
	if resp.Status != http.StatusCreated {
		t.Fatalf("publishing %s role version %d: %d %s", project, v, resp.Status, resp.Body)
	}
}

// TestReleaseArtifacts: a published release is <project>:<version>, an artifact manifest
// whose layers are the release files (titled by name), byte-identical to what
// api.ReleaseManifest rebuilds from the TUF target list; its tag and manifest cannot be
// moved or deleted through the OCI API, and a file added to the release later moves it.
func TestReleaseArtifacts(t *testing.T) {
	r, tok := registry(t)
	base := r.URL
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	// A project of its own on the shared server, also under go test -count=N.
	p := fmt.Sprintf("relx%d", time.Now().UnixNano()%1e9)
	a := testrepo.File{Path: p + "/1.0+git/relx-1.0.tar.gz", Content: []byte("release files of " + p)}
	b := testrepo.File{Path: p + "/1.0+git/relx-1.0-py3-none-any.whl", Content: []byte("a wheel of " + p)}
	publishRelease(t, r, key, p, 2, a)

	// Before anything reads the tag, the manifest (by the digest a client rebuilds from
	// TUF) and the release file (by its digest) are served.
	wantFirst := api.ReleaseManifest(p, "1.0+git", []api.ReleaseFile{{Name: "relx-1.0.tar.gz", Length: int64(len(a.Content)), SHA256: sha(a.Content)[7:]}})
	if got := do(t, base, req{method: "GET", path: "/v2/" + p + "/manifests/" + sha(wantFirst)}); got.status != 200 || !bytes.Equal(got.body, wantFirst) {
		t.Fatalf("release manifest by digest before its tag was read: %d %s", got.status, got.body)
	}
	p2 := fmt.Sprintf("rely%d", time.Now().UnixNano()%1e9)
	c := testrepo.File{Path: p2 + "/2.0/rely-2.0.tar.gz", Content: []byte("release files of " + p2)}
	publishRelease(t, r, key, p2, 2, c)
	if got := do(t, base, req{method: "GET", path: "/v2/" + p2 + "/blobs/" + sha(c.Content)}); got.status != 200 || !bytes.Equal(got.body, c.Content) {
		t.Fatalf("release file by digest before its release was read: %d %s", got.status, got.body)
	}

	tags := do(t, base, req{method: "GET", path: "/v2/" + p + "/tags/list"})
	if tags.status != 200 || !bytes.Contains(tags.body, []byte(`"1.0_git"`)) {
		t.Fatalf("tags of relx: %d %s", tags.status, tags.body)
	}
	get := do(t, base, req{method: "GET", path: "/v2/" + p + "/manifests/1.0_git"})
	want := api.ReleaseManifest(p, "1.0+git", []api.ReleaseFile{{Name: "relx-1.0.tar.gz", Length: int64(len(a.Content)), SHA256: sha(a.Content)[7:]}})
	if get.status != 200 || !bytes.Equal(get.body, want) || get.header.Get("Docker-Content-Digest") != sha(want) {
		t.Fatalf("release manifest: %d %s\nwant %s", get.status, get.body, want)
	}
	var m struct {
		ArtifactType string `json:"artifactType"`
		Layers       []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(get.body, &m); err != nil || m.ArtifactType != api.ArtifactTypeRelease || len(m.Layers) != 1 || m.Layers[0].Annotations["org.opencontainers.image.title"] != "relx-1.0.tar.gz" {
		t.Fatalf("release manifest content: %s", get.body)
	}
	if l := do(t, base, req{method: "GET", path: "/v2/" + p + "/blobs/" + m.Layers[0].Digest}); l.status != 200 || !bytes.Equal(l.body, a.Content) {
		t.Fatalf("release layer: %d", l.status)
	}
	// One copy of the bytes: the layer is the release file of the blob store.
	files, _ := filepath.Glob(filepath.Join(r.Config.BlobDir, "sha256", "*", sha(a.Content)[7:]))
	if len(files) != 1 {
		t.Fatalf("release file stored %d times", len(files))
	}

	// Not even the admin token can move or delete the release through the OCI API.
	other := do(t, base, req{method: "PUT", path: "/v2/" + p + "/manifests/" + sha(emptyIndex), auth: "basic:" + tok["admin"], body: emptyIndex, header: map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}})
	if other.status != 201 {
		t.Fatalf("pushing an index: %d %s", other.status, other.body)
	}
	for _, c := range []req{
		{method: "PUT", path: "/v2/" + p + "/manifests/1.0_git", auth: "basic:" + tok["admin"], body: emptyIndex, header: map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}},
		{method: "DELETE", path: "/v2/" + p + "/manifests/1.0_git", auth: "basic:" + tok["admin"]},
		{method: "DELETE", path: "/v2/" + p + "/manifests/" + sha(want), auth: "basic:" + tok["admin"]},
		{method: "DELETE", path: "/v2/" + p + "/blobs/" + sha(a.Content), auth: "basic:" + tok["admin"]},
	} {
		before := state(t, r)
		if got := do(t, base, c); got.status != 403 || got.code() != "DENIED" {
			t.Errorf("%s %s: %d %s, want 403 DENIED", c.method, c.path, got.status, got.body)
		}
		if state(t, r) != before {
			t.Errorf("%s %s changed the state", c.method, c.path)
		}
	}

	// A file added to the release in a later role version moves the tag with TUF.
	publishRelease(t, r, key, p, 3, a, b)
	get = do(t, base, req{method: "GET", path: "/v2/" + p + "/manifests/1.0_git"})
	want = api.ReleaseManifest(p, "1.0+git", []api.ReleaseFile{
		{Name: "relx-1.0-py3-none-any.whl", Length: int64(len(b.Content)), SHA256: sha(b.Content)[7:]},
		{Name: "relx-1.0.tar.gz", Length: int64(len(a.Content)), SHA256: sha(a.Content)[7:]},
	})
	if get.status != 200 || !bytes.Equal(get.body, want) {
		t.Fatalf("release manifest after adding a file: %d %s", get.status, get.body)
	}

	// oras pull yields the files.
	out := t.TempDir()
	cmd := exec.Command(client(t, "oras"), "pull", "--plain-http", "-o", out, r.Addr+"/"+p+":1.0_git")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oras pull: %v\n%s", err, b)
	}
	for _, f := range []testrepo.File{a, b} {
		got, err := os.ReadFile(filepath.Join(out, filepath.Base(f.Path)))
		if err != nil || !bytes.Equal(got, f.Content) {
			t.Errorf("oras pull: %s: %v", f.Path, err)
		}
	}
}

var emptyIndex = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
