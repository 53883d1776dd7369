package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/mirror"
)

func ociDigest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestMirrorServesOCI lays out a mirror with mirror.Dir.Apply (an image, tagged, and a
// signature referring to it) and reads it as OCI clients do; writes are refused.
func TestMirrorServesOCI(t *testing.T) {
	layer := []byte("layer")
	cfg := []byte("{}")
	img, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mirror.OCIImageManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ociDigest(cfg), "size": 2},
		"layers": []any{map[string]any{"mediaType": "application/octet-stream", "digest": ociDigest(layer), "size": len(layer)}}})
	sig, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mirror.OCIImageManifest, "artifactType": "application/vnd.cncf.notary.signature",
		"config": map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ociDigest(cfg), "size": 2}, "layers": []any{},
		"subject": map[string]any{"mediaType": mirror.OCIImageManifest, "digest": ociDigest(img), "size": len(img)}})
	rec := &mirror.OCIRepository{Name: "hello/app", Tags: map[string]string{"v1": ociDigest(img), "v2": ociDigest(img)},
		Manifests: []mirror.OCIManifestRef{{Digest: ociDigest(img), MediaType: mirror.OCIImageManifest}, {Digest: ociDigest(sig), MediaType: mirror.OCIImageManifest}}}
	rb, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := mirror.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pre := "v2/hello/app/"
	b := &mirror.Bundle{Info: mirror.Info{Format: mirror.Format, ExportedAt: time.Unix(1, 0)}, Files: []mirror.File{
		mirror.BytesFile(pre+"manifests/"+ociDigest(img), mirror.MediaTypeOCIManifest, img),
		mirror.BytesFile(pre+"manifests/"+ociDigest(sig), mirror.MediaTypeOCIManifest, sig),
		mirror.BytesFile(pre+"blobs/"+ociDigest(layer), mirror.MediaTypeOCIBlob, layer),
		mirror.BytesFile(pre+"blobs/"+ociDigest(cfg), mirror.MediaTypeOCIBlob, cfg),
		mirror.BytesFile(pre+mirror.OCIRepositoryFile, mirror.MediaTypeOCIRepository, rb),
	}}
	if _, err := d.Apply(b, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewMirror(d.Root(), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	for _, tt := range []struct {
		method, path     string
		status           int
		body, ctype, dig string
	}{
		{"GET", "/v2/", 200, "{}", "application/json", ""},
		{"GET", "/v2/hello/app/manifests/v1", 200, string(img), mirror.OCIImageManifest, ociDigest(img)},
		{"HEAD", "/v2/hello/app/manifests/" + ociDigest(img), 200, "", mirror.OCIImageManifest, ociDigest(img)},
		{"GET", "/v2/hello/app/manifests/" + ociDigest(sig), 200, string(sig), mirror.OCIImageManifest, ociDigest(sig)},
		{"GET", "/v2/hello/app/blobs/" + ociDigest(layer), 200, "layer", "application/octet-stream", ociDigest(layer)},
		{"GET", "/v2/hello/app/tags/list", 200, `{"name":"hello/app","tags":["v1","v2"]}`, "application/json", ""},
		{"GET", "/v2/hello/app/tags/list?n=1", 200, `{"name":"hello/app","tags":["v1"]}`, "application/json", ""},
		{"GET", "/v2/hello/app/tags/list?n=1&last=v1", 200, `{"name":"hello/app","tags":["v2"]}`, "application/json", ""},
		{"GET", "/v2/hello/app/referrers/" + ociDigest(img), 200, ociDigest(sig), mirror.OCIImageIndex, ""},
		{"GET", "/v2/hello/app/referrers/" + ociDigest(img) + "?artifactType=application/x-sbom", 200, `"manifests":[]`, mirror.OCIImageIndex, ""},
		{"GET", "/v2/hello/app/referrers/" + ociDigest(layer), 200, `"manifests":[]`, mirror.OCIImageIndex, ""},
		{"GET", "/v2/hello/app/manifests/v3", 404, "MANIFEST_UNKNOWN", "", ""},
		{"GET", "/v2/hello/app/manifests/" + ociDigest(layer), 404, "MANIFEST_UNKNOWN", "", ""},
		{"GET", "/v2/hello/app/blobs/" + ociDigest([]byte("nope")), 404, "BLOB_UNKNOWN", "", ""},
		{"GET", "/v2/hello/other/tags/list", 404, "NAME_UNKNOWN", "", ""},
		{"GET", "/v2/hello/..%2f..%2fmetadata/manifests/v1", 404, "NAME_UNKNOWN", "", ""},
		{"GET", "/v2/hello/app/manifests/_repository.json", 404, "MANIFEST_UNKNOWN", "", ""},
		{"PUT", "/v2/hello/app/manifests/v3", 405, "DENIED", "", ""},
		{"POST", "/v2/hello/app/blobs/uploads/", 405, "DENIED", "", ""},
		{"DELETE", "/v2/hello/app/manifests/" + ociDigest(img), 405, "DENIED", "", ""},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) ||
			(tt.ctype != "" && resp.Header.Get("Content-Type") != tt.ctype) || resp.Header.Get("Docker-Content-Digest") != tt.dig {
			t.Errorf("%s %s: %d %q (Content-Type %q, digest %q); want %d %q %q %q", tt.method, tt.path, resp.StatusCode, body,
				resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), tt.status, tt.body, tt.ctype, tt.dig)
		}
	}
}
