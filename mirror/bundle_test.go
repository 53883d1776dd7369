package mirror

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
)

func sample() *Bundle {
	return &Bundle{
		Info: Info{Format: Format, Server: "https://cairn.example.org", ExportedAt: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), Projects: []string{"hello"}},
		Files: []File{
			BytesFile("targets/hello/1.0/"+sum("hi")+".hello.txt", MediaTypeTarget, []byte("hi")),
			BytesFile("metadata/timestamp.json", MediaTypeMetadata, []byte(`{"signed":{}}`)),
			BytesFile("metadata/1.root.json", MediaTypeMetadata, []byte(`{"signed":{"v":1}}`)),
			BytesFile(AuditLogPath, MediaTypeAuditLog, []byte(`[]`)),
		},
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestWriteIsDeterministicAndReadsBack(t *testing.T) {
	var a, b bytes.Buffer
	if err := Write(&a, sample()); err != nil {
		t.Fatal(err)
	}
	s := sample()
	s.Files[0], s.Files[2] = s.Files[2], s.Files[0] // order of the input does not matter
	if err := Write(&b, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same bundle differ")
	}
	got, err := Read(bytes.NewReader(a.Bytes()), t.TempDir(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Info.Server != "https://cairn.example.org" || len(got.Files) != 4 || got.Files[0].Path != AuditLogPath {
		t.Fatalf("read back %+v", got)
	}
	f, ok := got.File("metadata/1.root.json")
	if !ok {
		t.Fatal("no root")
	}
	if raw, err := f.ReadAll(100); err != nil || string(raw) != `{"signed":{"v":1}}` {
		t.Fatalf("root = %q, %v", raw, err)
	}
}

// layoutWith writes a hand-made OCI layout whose manifest has the given layers.
func layoutWith(t *testing.T, layers []descriptor, blobs map[string][]byte) []byte {
	t.Helper()
	cfg, _ := json.Marshal(Info{Format: Format, ExportedAt: time.Unix(1, 0).UTC()})
	blobs[sum(string(cfg))] = cfg
	m, _ := json.Marshal(manifest{SchemaVersion: 2, MediaType: mediaTypeManifest, ArtifactType: ArtifactType,
		Config: descriptor{MediaType: MediaTypeConfig, Digest: "sha256:" + sum(string(cfg)), Size: int64(len(cfg))}, Layers: layers})
	blobs[sum(string(m))] = m
	idx, _ := json.Marshal(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{{MediaType: mediaTypeManifest, ArtifactType: ArtifactType, Digest: "sha256:" + sum(string(m)), Size: int64(len(m))}}})
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	put := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o644})
		tw.Write(b)
	}
	put("oci-layout", []byte(ociLayout))
	put("index.json", idx)
	for d, b := range blobs {
		put("blobs/sha256/"+d, b)
	}
	tw.Close()
	return out.Bytes()
}

func TestReadRefusesBadLayers(t *testing.T) {
	body := []byte("x")
	for _, tt := range []struct {
		name  string
		layer descriptor
		code  api.Code
		want  string
	}{
		{"unknown media type", descriptor{MediaType: "application/x-evil", Digest: "sha256:" + sum("x"), Size: 1, Annotations: map[string]string{annotationTitle: "metadata/1.root.json"}}, api.CodeUnsupported, "does not know"},
		{"traversal in a title", descriptor{MediaType: MediaTypeTarget, Digest: "sha256:" + sum("x"), Size: 1, Annotations: map[string]string{annotationTitle: "targets/../../etc/" + sum("x") + ".passwd"}}, api.CodeInvalidPath, "is not targets/<project>/<version>/<sha256>.<file>"},
		{"dot-dot version", descriptor{MediaType: MediaTypeTarget, Digest: "sha256:" + sum("x"), Size: 1, Annotations: map[string]string{annotationTitle: "targets/hello/../" + sum("x") + ".passwd"}}, api.CodeInvalidPath, "not allowed"},
		{"metadata outside metadata/", descriptor{MediaType: MediaTypeMetadata, Digest: "sha256:" + sum("x"), Size: 1, Annotations: map[string]string{annotationTitle: "../1.root.json"}}, api.CodeInvalidPath, "not under metadata/"},
		{"wrong size", descriptor{MediaType: MediaTypeMetadata, Digest: "sha256:" + sum("x"), Size: 2, Annotations: map[string]string{annotationTitle: "metadata/1.root.json"}}, api.CodeBadRequest, "the manifest says 2"},
		{"missing blob", descriptor{MediaType: MediaTypeMetadata, Digest: "sha256:" + sum("y"), Size: 1, Annotations: map[string]string{annotationTitle: "metadata/1.root.json"}}, api.CodeBadRequest, "its blob is not in the bundle"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := layoutWith(t, []descriptor{tt.layer}, map[string][]byte{sum("x"): body})
			_, err := Read(bytes.NewReader(raw), t.TempDir(), Limits{})
			if api.CodeOf(err) != tt.code || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %s mentioning %q", err, tt.code, tt.want)
			}
		})
	}
}

func TestReadBounds(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		lim  Limits
		code api.Code
	}{
		{Limits{MaxMembers: 3}, api.CodeTooMany},
		{Limits{MaxMemberBytes: 10}, api.CodeTooLarge},
		{Limits{MaxTotalBytes: 100}, api.CodeTooLarge},
	} {
		if _, err := Read(bytes.NewReader(buf.Bytes()), t.TempDir(), tt.lim); api.CodeOf(err) != tt.code {
			t.Errorf("limits %+v: err = %v; want %s", tt.lim, err, tt.code)
		}
	}
	// Many layers sharing one blob: bounded by the member limit too.
	l := descriptor{MediaType: MediaTypeTarget, Digest: "sha256:" + sum("x"), Size: 1}
	var layers []descriptor
	for i := range 10 {
		l.Annotations = map[string]string{annotationTitle: "targets/hello/1." + strings.Repeat("0", i) + "/" + sum("x") + ".x"}
		layers = append(layers, l)
	}
	if _, err := Read(bytes.NewReader(layoutWith(t, layers, map[string][]byte{sum("x"): []byte("x")})), t.TempDir(), Limits{MaxMembers: 8}); api.CodeOf(err) != api.CodeTooMany {
		t.Errorf("10 layers over one blob with 8 members allowed: %v", err)
	}
	if _, err := Read(strings.NewReader("not a tar at all, just text"), t.TempDir(), Limits{}); api.CodeOf(err) != api.CodeBadRequest {
		t.Errorf("garbage: %v", err)
	}
}
