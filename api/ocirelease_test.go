package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
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

// An attestation's referrer manifest is derived, never stored: its bytes (and so its
// digest, which clients and mirrors record) must not change. This pins them.
func TestAttestationManifestIsStable(t *testing.T) {
	rel := api.ReleaseManifest("demo", "1.0", []api.ReleaseFile{{Name: "a.whl", Length: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}})
	got := string(api.AttestationManifest(rel, api.AttestationRef{FileName: "a.whl", FileSHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		BundleSHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", BundleSize: 4971, PredicateType: "https://slsa.dev/provenance/v1"}))
	want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","size":4971,"annotations":{"org.opencontainers.image.title":"sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.sigstore.json"}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:SUBJECT","size":SIZE},"annotations":{"dev.cairn.attestation.file":"a.whl","dev.cairn.attestation.file.digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","dev.sigstore.bundle.content":"dsse-envelope","dev.sigstore.bundle.predicateType":"https://slsa.dev/provenance/v1"}}`
	sum := sha256.Sum256(rel)
	want = strings.ReplaceAll(strings.ReplaceAll(want, "SUBJECT", hex.EncodeToString(sum[:])), "SIZE", strconv.Itoa(len(rel)))
	if got != want {
		t.Fatalf("attestation manifest changed:\n got %s\nwant %s", got, want)
	}
}
