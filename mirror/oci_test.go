package mirror

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

func TestOCIPath(t *testing.T) {
	d := "sha256:" + sum("x")
	for _, tt := range []struct {
		path, repo, kind string
		ok               bool
	}{
		{"v2/hello/manifests/" + d, "hello", "manifests", true},
		{"v2/hello/signed/blobs/" + d, "hello/signed", "blobs", true},
		{"v2/hello/" + OCIRepositoryFile, "hello", "repository", true},
		{"v2/hello/manifests/latest", "", "", false},             // tags are derived, never carried
		{"v2/hello/manifests/sha512:" + sum("x"), "", "", false}, // sha256 only
		{"v2/../etc/blobs/" + d, "", "", false},
		{"v2/Hello/blobs/" + d, "", "", false},
		{"v2/hello/tags/blobs/" + d, "", "", false}, // a nested repository named like a route
		{"v2/blobs/" + d, "", "", false},
		{"metadata/blobs/" + d, "", "", false},
	} {
		repo, kind, _, err := OCIPath(tt.path)
		if (err == nil) != tt.ok || repo != tt.repo && tt.ok || kind != tt.kind && tt.ok {
			t.Errorf("OCIPath(%q) = %q, %q, %v; want ok=%v", tt.path, repo, kind, err, tt.ok)
		}
	}
}

// ociSample is a repository of one image with one signature referring to it.
func ociSample(t *testing.T) (files []File, img, sig string) {
	t.Helper()
	cfg, layer := []byte(`{"architecture":"amd64"}`), []byte("layer bytes")
	im, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": OCIImageManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sum(string(cfg)), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + sum(string(layer)), "size": len(layer)}}})
	img = "sha256:" + sum(string(im))
	sm, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": OCIImageManifest, "artifactType": "application/vnd.cncf.notary.signature",
		"config": map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + sum("{}"), "size": 2},
		"layers": []any{}, "subject": map[string]any{"mediaType": OCIImageManifest, "digest": img, "size": len(im)},
		"annotations": map[string]string{"io.cncf.notary.x509chain.thumbprint#S256": "[]"}})
	sig = "sha256:" + sum(string(sm))
	rec := &OCIRepository{Name: "hello/app", Tags: map[string]string{"v1": img},
		Manifests: []OCIManifestRef{{Digest: sig, MediaType: OCIImageManifest}, {Digest: img, MediaType: OCIImageManifest}}}
	rb, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dir := "v2/hello/app/"
	return []File{
		BytesFile(dir+"manifests/"+img, MediaTypeOCIManifest, im),
		BytesFile(dir+"manifests/"+sig, MediaTypeOCIManifest, sm),
		BytesFile(dir+"blobs/sha256:"+sum(string(cfg)), MediaTypeOCIBlob, cfg),
		BytesFile(dir+"blobs/sha256:"+sum(string(layer)), MediaTypeOCIBlob, layer),
		BytesFile(dir+"blobs/sha256:"+sum("{}"), MediaTypeOCIBlob, []byte("{}")),
		BytesFile(dir+OCIRepositoryFile, MediaTypeOCIRepository, rb),
	}, img, sig
}

func TestOCIRoundTripAndServedFiles(t *testing.T) {
	files, img, sig := ociSample(t)
	b := sample()
	b.Files = append(b.Files, files...)
	var buf bytes.Buffer
	if err := Write(&buf, b); err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(buf.Bytes()), t.TempDir(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(got, []byte(`{"root":1}`)); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		raw, err := os.ReadFile(filepath.Join(d.Root(), filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	if read("v2/hello/app/manifests/v1") != read("v2/hello/app/manifests/"+img) {
		t.Error("the tag's file is not the tagged manifest's bytes")
	}
	if tl := read("v2/hello/app/tags/list"); tl != `{"name":"hello/app","tags":["v1"]}` {
		t.Errorf("tags/list = %s", tl)
	}
	var idx struct {
		Manifests []OCIDescriptor `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(read("v2/hello/app/referrers/"+img)), &idx); err != nil || len(idx.Manifests) != 1 ||
		idx.Manifests[0].Digest != sig || idx.Manifests[0].ArtifactType != "application/vnd.cncf.notary.signature" {
		t.Errorf("referrers of the image = %+v, %v", idx, err)
	}
	if r := read("v2/hello/app/referrers/" + sig); !strings.Contains(r, `"manifests":[]`) {
		t.Errorf("referrers of the signature = %s, want an empty index", r)
	}

	// A later record without the tag removes the tag's file; manifests stay.
	rec := &OCIRepository{Name: "hello/app", Manifests: []OCIManifestRef{{Digest: sig, MediaType: OCIImageManifest}, {Digest: img, MediaType: OCIImageManifest}}}
	rb, _ := rec.Encode()
	later := &Bundle{Info: b.Info, Files: []File{BytesFile("v2/hello/app/"+OCIRepositoryFile, MediaTypeOCIRepository, rb)}}
	if _, err := d.Apply(later, []byte(`{"root":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "v2/hello/app/manifests/v1")); !os.IsNotExist(err) {
		t.Errorf("the dropped tag's file is still there: %v", err)
	}
	read("v2/hello/app/manifests/" + img)
}

func TestReadRefusesOCIFilesAwayFromTheirDigest(t *testing.T) {
	files, img, _ := ociSample(t)
	var m File
	for _, f := range files {
		if f.Path == "v2/hello/app/manifests/"+img {
			m = f
		}
	}
	raw, _ := m.ReadAll(1 << 20)
	other := "sha256:" + sum("other")
	for _, tt := range []struct {
		name  string
		layer descriptor
		code  api.Code
	}{
		{"manifest under another digest", descriptor{MediaType: MediaTypeOCIManifest, Digest: "sha256:" + m.SHA256, Size: m.Size, Annotations: map[string]string{annotationTitle: "v2/hello/app/manifests/" + other}}, api.CodeDigestMismatch},
		{"blob under another digest", descriptor{MediaType: MediaTypeOCIBlob, Digest: "sha256:" + m.SHA256, Size: m.Size, Annotations: map[string]string{annotationTitle: "v2/hello/app/blobs/" + other}}, api.CodeDigestMismatch},
		{"manifest typed as a blob path", descriptor{MediaType: MediaTypeOCIManifest, Digest: "sha256:" + m.SHA256, Size: m.Size, Annotations: map[string]string{annotationTitle: "v2/hello/app/blobs/" + img}}, api.CodeInvalidPath},
		{"traversal in a repository", descriptor{MediaType: MediaTypeOCIBlob, Digest: "sha256:" + m.SHA256, Size: m.Size, Annotations: map[string]string{annotationTitle: "v2/hello/../../blobs/" + img}}, api.CodeInvalidPath},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(layoutWith(t, []descriptor{tt.layer}, map[string][]byte{m.SHA256: raw})), t.TempDir(), Limits{})
			if api.CodeOf(err) != tt.code {
				t.Fatalf("err = %v; want %s", err, tt.code)
			}
		})
	}
	// A manifest larger than a registry accepts.
	big := bytes.Repeat([]byte(" "), MaxOCIManifest+1)
	d := "sha256:" + sum(string(big))
	_, err := Read(bytes.NewReader(layoutWith(t, []descriptor{{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(big)), Annotations: map[string]string{annotationTitle: "v2/hello/manifests/" + d}}}, map[string][]byte{sum(string(big)): big})), t.TempDir(), Limits{})
	if api.CodeOf(err) != api.CodeTooLarge {
		t.Fatalf("a 4 MiB+1 manifest: %v", err)
	}
}
