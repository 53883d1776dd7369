package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/attest/attesttest"
	cairnclient "github.com/cairn-dev/cairn/client"
)

// TestAttestGetOCIByDigest: 'cairn get oci://HOST/REPO@sha256:…' (sget's OCI mode) against
// cairnd's own /v2/: the release artifact is fetched by digest only, the attestations the
// registry lists as its referrers are verified against the trusted root from TUF and the
// policy applied per layer; a policy needing more identities than attested exits 4 with
// nothing written; a tag, and a digest the registry does not have, are refused.
func TestAttestGetOCIByDigest(t *testing.T) {
	sig := attesttest.New(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_getoci", sig.TrustedRoot(t))
	ctx := t.Context()
	content := []byte("hello, world: fetched by digest over OCI")
	releaseHello(t, maint, "1.0.0", content)
	subj := attesttest.File("hello-1.0.0.tar.gz", content)
	rest, err := cairnclient.NewAPI(r.URL, cairnclient.WithToken(r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"alice@hello.dev", "bob@hello.dev"} {
		if _, err := rest.PostAttestation(ctx, subj.SHA256, sig.Bundle(t, who, "https://accounts.example.com", attesttest.Options{}, subj)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, r.URL+"/v2/hello/manifests/1.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("cairn", r.AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("release manifest: %v %v", res, err)
	}
	digest := res.Header.Get("Docker-Content-Digest")
	res.Body.Close()
	host := strings.TrimPrefix(r.URL, "http://")
	ref := "oci://" + host + "/hello@" + digest

	// The registry needs the Cairn token (anonymous pull is off): it goes to the configured
	// server's registry only.
	dl := newCLI(t, r.AdminToken)
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	policy := func(n string) string {
		return writePolicy(t, "global:\n  trusted_identities:\n    - san_regexp: \".*@hello[.]dev\"\n      issuer: https://accounts.example.com\n  require_identities: "+n+"\n")
	}
	dir := t.TempDir()
	code, _, errs := dl.run(t, "get", ref, "--output-dir", dir, "--policy", policy("3"))
	if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "require_identities") {
		t.Fatalf("get %s with a policy of 3 identities (2 attested): exit %d, %s", ref, code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("get wrote %d files after a policy refusal", len(ents))
	}
	code, out, errs := dl.run(t, "get", ref, "--output-dir", dir, "--policy", policy("2"))
	if code != 0 || !strings.Contains(errs, "2 verified attestations from 2 distinct identities") {
		t.Fatalf("get %s with the policy met: exit %d\n%s\n%s", ref, code, out, errs)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "hello-1.0.0.tar.gz")); err != nil || string(b) != string(content) {
		t.Fatalf("the fetched file: %q %v", b, err)
	}

	// A tag is resolved once to the digest of the manifest the registry sends, and said
	// so; with --oci-layout the whole artifact is written as an image layout that oras
	// reads back by the tag.
	layout := filepath.Join(t.TempDir(), "layout")
	code, out, errs = dl.run(t, "get", "oci://"+host+"/hello:1.0.0", "--oci-layout", layout, "--policy", policy("2"))
	if code != 0 || !strings.Contains(errs, "Tag 1.0.0 resolved to "+digest) {
		t.Fatalf("get by tag into a layout: exit %d\n%s\n%s", code, out, errs)
	}
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if b, err := os.ReadFile(filepath.Join(layout, "index.json")); err != nil || json.Unmarshal(b, &index) != nil || len(index.Manifests) != 1 ||
		index.Manifests[0].Digest != digest || index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "1.0.0" {
		t.Fatalf("the layout's index.json: %+v (%v)", index, err)
	}
	sum := sha256.Sum256(content)
	if b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", hex.EncodeToString(sum[:]))); err != nil || string(b) != string(content) {
		t.Fatalf("the layout's layer blob: %q %v", b, err)
	}
	oras := ociClient(t, "oras")
	got := newOCIUser(t).ok(t, cmd{}, oras, "manifest", "fetch", "--oci-layout", layout+":1.0.0", "--descriptor")
	if !strings.Contains(got, digest) {
		t.Fatalf("oras reads another manifest from the layout: %s", got)
	}
	if code, _, errs := dl.run(t, "get", "oci://"+host+"/hello:1.0.0", "--oci-layout", layout); code == 0 || !strings.Contains(errs, "not empty") {
		t.Fatalf("get into a layout that is not empty: exit %d, %s", code, errs)
	}
	if code, _, errs := dl.run(t, "get", "oci://"+host+"/hello", "--output-dir", t.TempDir()); code == 0 || !strings.Contains(errs, "neither a digest nor a tag") {
		t.Fatalf("get with neither digest nor tag: exit %d, %s", code, errs)
	}

	// Another registry: the distribution registry, which has no referrers API. oras copies
	// the release and its attestation referrers there (into the referrers tag schema);
	// cairn get reads them back through it and verifies them, with no Cairn token sent.
	reg := startDistribution(t)
	ou := newOCIUser(t)
	ou.ok(t, cmd{stdin: r.AdminToken}, oras, "login", "--plain-http", "-u", "cairn", "--password-stdin", host)
	ou.ok(t, cmd{}, oras, "copy", "-r", "--from-plain-http", "--to-plain-http", host+"/hello:1.0.0", reg+"/mirror/hello:1.0.0")
	regDir := t.TempDir()
	code, out, errs = dl.run(t, "get", "oci://"+reg+"/mirror/hello@"+digest, "--output-dir", regDir, "--policy", policy("2"))
	if code != 0 || !strings.Contains(errs, "2 verified attestations from 2 distinct identities") {
		t.Fatalf("get from the distribution registry: exit %d\n%s\n%s", code, out, errs)
	}
	if b, err := os.ReadFile(filepath.Join(regDir, "hello-1.0.0.tar.gz")); err != nil || string(b) != string(content) {
		t.Fatalf("the file fetched from the distribution registry: %q %v", b, err)
	}
	if code, _, errs := dl.run(t, "get", "oci://"+reg+"/mirror/hello@"+digest, "--output-dir", t.TempDir(), "--policy", policy("3")); code != int(cairnclient.ExitPolicy) {
		t.Fatalf("get from the distribution registry with an unmet policy: exit %d, %s", code, errs)
	}

	// A digest the registry does not have is an error, nothing written.
	other := sha256.Sum256([]byte("no such manifest"))
	empty := t.TempDir()
	if code, _, errs := dl.run(t, "get", "oci://"+host+"/hello@sha256:"+hex.EncodeToString(other[:]), "--output-dir", empty); code == 0 || !strings.Contains(errs, "404") {
		t.Fatalf("get of an unknown digest: exit %d, %s", code, errs)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Fatalf("get of an unknown digest wrote %d files", len(ents))
	}
}
