package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMirrorServesOnlyMirrorPaths(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "mirror")
	sum := strings.Repeat("ab", 32)
	fsum, b1, b2 := strings.Repeat("cd", 32), strings.Repeat("01", 32), strings.Repeat("02", 32)
	for p, body := range map[string]string{
		"metadata/timestamp.json":                                   `{"ts":1}`,
		"metadata/3.snapshot.json":                                  `{"snap":3}`,
		"targets/hello/1.0/" + sum + ".a.txt":                       "file",
		"mirror/bundle.json":                                        `{"format":"cairn-mirror/1"}`,
		"merkle/7/targets.json":                                     `{"proof":7}`,
		"targets/_cairn/sigstore/" + sum + ".trusted_root.json":     `{"tr":1}`,
		"targets/_cairn/attestations/" + sum + "." + fsum + ".json": `{"idx":1}`,
		"attestations/" + fsum + "/" + b1 + ".sigstore.json":        `{"bundle":1}`,
		"attestations/" + fsum + "/" + b1 + ".json":                 `{"seq":5,"file_sha256":"` + fsum + `","bundle_sha256":"` + b1 + `"}`,
		"attestations/" + fsum + "/" + b2 + ".json":                 `{"seq":3,"file_sha256":"` + fsum + `","bundle_sha256":"` + b2 + `"}`,
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A file beside the mirror that no path may reach.
	if err := os.WriteFile(filepath.Join(root, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewMirror(dir, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	for _, tt := range []struct {
		method, path string
		status       int
		body, cache  string
	}{
		{"GET", "/metadata/timestamp.json", 200, `{"ts":1}`, cacheShort},
		{"GET", "/metadata/3.snapshot.json", 200, `{"snap":3}`, cacheImmutable},
		{"GET", "/targets/hello/1.0/" + sum + ".a.txt", 200, "file", cacheImmutable},
		{"GET", "/mirror/bundle.json", 200, `cairn-mirror/1`, cacheShort},
		{"GET", "/metadata/4.snapshot.json", 404, "not_found", ""},
		{"GET", "/metadata/..%2f..%2fsecret", 404, "not_found", ""},
		{"GET", "/targets/hello/..%2f..%2f..%2f/" + sum + ".secret", 404, "not_found", ""},
		{"GET", "/targets/hello/1.0/a.txt", 404, "not_found", ""},
		{"GET", "/api/v1/projects", 404, "not mirrored", ""},
		{"GET", "/api/v1/merkle/7/targets", 200, `{"proof":7}`, cacheImmutable},
		{"GET", "/api/v1/merkle/8/targets", 404, "--classic-snapshot", ""},
		{"GET", "/api/v1/merkle/7/..%2f..%2fsecret", 404, "--classic-snapshot", ""},
		{"GET", "/targets/_cairn/sigstore/" + sum + ".trusted_root.json", 200, `{"tr":1}`, cacheImmutable},
		{"GET", "/targets/_cairn/attestations/" + sum + "." + fsum + ".json", 200, `{"idx":1}`, cacheImmutable},
		{"GET", "/targets/_cairn/other/" + sum + ".x.json", 404, "not_found", ""},
		// The list by seq, paged as the live server pages it; a bundle by its digest.
		{"GET", "/api/v1/attestations/" + fsum, 200, `"attestations":[{"seq":3`, ""},
		{"GET", "/api/v1/attestations/" + fsum + "?limit=1", 200, `"next":3`, ""},
		{"GET", "/api/v1/attestations/" + fsum + "?after=3", 200, `"attestations":[{"seq":5`, ""},
		{"GET", "/api/v1/attestations/" + sum, 200, `"attestations":[]`, ""},
		{"GET", "/api/v1/attestations/" + fsum + "?limit=0", 400, "limit", ""},
		{"GET", "/api/v1/attestations/" + fsum + "/" + b1, 200, `{"bundle":1}`, cacheImmutable},
		{"GET", "/api/v1/attestations/" + fsum + "/" + b2, 404, "no attestation", ""},
		{"GET", "/api/v1/attestations/" + fsum + "/..%2f..%2fsecret", 404, "not_found", ""},
		{"GET", "/api/v1/attestations/NOTHEX", 404, "not_found", ""},
		{"POST", "/api/v1/attestations/" + fsum, 405, "read_only_mirror", ""},
		{"GET", "/readyz", 200, "ready", ""},
		{"DELETE", "/targets/hello/1.0/" + sum + ".a.txt", 405, "read_only_mirror", ""},
		{"POST", "/api/v1/projects", 405, "read_only_mirror", ""},
		{"PATCH", "/v2/hello/blobs/uploads/x", 405, "DENIED", ""},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.body) || (tt.cache != "" && resp.Header.Get("Cache-Control") != tt.cache) {
			t.Errorf("%s %s: %d %q cache %q; want %d %q %q", tt.method, tt.path, resp.StatusCode, b, resp.Header.Get("Cache-Control"), tt.status, tt.body, tt.cache)
		}
	}
}
