package api_test

import (
	"testing"

	"github.com/cairn-dev/cairn/api"
)

// The release manifest's bytes are a compatibility promise: every published release's OCI
// digest is computed from them, by the server and by clients. This pins them.
func TestReleaseManifestIsStable(t *testing.T) {
	files := []api.ReleaseFile{
		{Name: "b.tar.gz", Length: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{Name: "a.whl", Length: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	got := string(api.ReleaseManifest("demo", "1.0+build", files))
	want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cairn.release.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"annotations":{"org.opencontainers.image.title":"a.whl"}},{"mediaType":"application/octet-stream","digest":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","size":3,"annotations":{"org.opencontainers.image.title":"b.tar.gz"}}],"annotations":{"dev.cairn.project":"demo","org.opencontainers.image.version":"1.0+build"}}`
	if got != want {
		t.Fatalf("release manifest changed:\n got %s\nwant %s", got, want)
	}
	// The order of the input does not matter.
	again := api.ReleaseManifest("demo", "1.0+build", []api.ReleaseFile{files[1], files[0]})
	if string(again) != got {
		t.Fatal("the manifest depends on the order of the files")
	}
	if tag := api.ReleaseTag("1.0+build"); tag != "1.0_build" {
		t.Fatalf("tag %q", tag)
	}
}
