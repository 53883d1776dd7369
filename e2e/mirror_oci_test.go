package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/mirror"
)

// TestMirrorOCI carries OCI artifacts across the air gap: an artifact pushed with oras,
// an SBOM attached to it, notation signatures on it (referrers API and the referrers tag
// schema) and on a release, all exported from a live cairnd with the releases, the source
// stopped, the bundle verified offline and imported into 'cairnd serve --mirror' and a
// static directory; then oras pulls and discovers, and notation verifies, against the
// mirror. Tampered bundles (a manifest's bytes, a blob's bytes, a dropped blob, a release
// tag moved) are refused by verify and import, with the mirror unchanged.
func TestMirrorOCI(t *testing.T) {
	oras, notation := ociClient(t, "oras"), ociClient(t, "notation")
	reg := newOCIRegistry(t, true)
	publishAll(t, reg.w.r)
	u := newOCIUser(t)
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, oras, "login", "--plain-http", "-u", "cairn", "--password-stdin", reg.host)

	src := t.TempDir()
	readme := []byte("files pushed with oras, carried across the gap\n")
	sbom := []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"demo-files","dataLicense":"CC0-1.0","packages":[]}`)
	writeFile(t, src, "readme.txt", readme)
	writeFile(t, src, "sbom.spdx.json", sbom)
	var pushed, attached struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(u.ok(t, cmd{dir: src}, oras, "push", "--plain-http", "--artifact-type", "application/vnd.cairn.e2e.files.v1", "--format", "json",
		reg.ref("demo/files:v1"), "readme.txt:text/plain")), &pushed); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(u.ok(t, cmd{dir: src}, oras, "attach", "--plain-http", "--artifact-type", "application/spdx+json", "--format", "json",
		reg.ref("demo/files:v1"), "sbom.spdx.json:application/spdx+json")), &attached); err != nil {
		t.Fatal(err)
	}
	release := digestOf(manifestOf(t, reg, "demo", "2.0.0"))

	// notation: the artifact signed through the referrers API, the release with the
	// referrers tag schema (a sha256-<hex> tag holding an index).
	u.ok(t, cmd{}, notation, "cert", "generate-test", "--default", "cairn-e2e")
	u.ok(t, cmd{}, notation, "sign", "--insecure-registry", "--force-referrers-tag=false", reg.ref("demo/files@"+pushed.Digest))
	u.ok(t, cmd{}, notation, "sign", "--insecure-registry", reg.ref("demo@"+release))

	// Export, with the project's own repository and the nested one named.
	work := t.TempDir()
	rootFile := writeFile(t, work, "root.json", reg.w.r.RootJSON)
	c := newCLI(t, reg.w.r.AdminToken)
	c.ok(t, "init", "--server", reg.w.r.URL, "--root", rootFile)
	bundle := filepath.Join(work, "bundle.tar")
	if code, _, errs := c.run(t, "mirror", "export", "--project", "demo", "--oci-repo", "demo/nosuchproject", "--oci-repo", "other/files", "-o", bundle); code == 0 || !strings.Contains(errs, "is not exported by this bundle") {
		t.Fatalf("export with --oci-repo of another project: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Fatalf("a refused export wrote %s: %v", bundle, err)
	}
	// Bounded: more OCI manifests and blobs than --max-files allows is refused, nothing written.
	if code, _, errs := c.run(t, "mirror", "export", "--project", "demo", "--oci-repo", "demo/files", "--max-files", "4", "-o", bundle); code == 0 || !strings.Contains(errs, "OCI artifacts would be more than 4") {
		t.Fatalf("export over --max-files: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Fatalf("a refused export wrote %s: %v", bundle, err)
	}
	c.ok(t, "mirror", "export", "--project", "demo", "--oci-repo", "demo/files", "-o", bundle)

	// Offline from here: the source is stopped.
	if err := reg.w.r.Close(); err != nil {
		t.Fatal(err)
	}
	off := newCLI(t, "")
	var ver cairnclient.BundleVerification
	if err := json.Unmarshal([]byte(off.ok(t, "mirror", "verify", bundle, "--root", rootFile, "-o", "json")), &ver); err != nil {
		t.Fatal(err)
	}
	// demo: 2 releases, the notation signature and its tag-schema index; demo/files: the
	// artifact, its SBOM and its signature.
	if ver.OCIRepositories != 2 || ver.OCIManifests != 7 {
		t.Fatalf("verify: %d OCI repositories, %d manifests; want 2 and 7 (%+v)", ver.OCIRepositories, ver.OCIManifests, ver)
	}

	mdir := filepath.Join(work, "mirror")
	if code, out, errs := cairnd(t, "mirror", "import", bundle, "--mirror-dir", mdir, "--root", rootFile); code != 0 {
		t.Fatalf("cairnd mirror import: %d\n%s\n%s", code, out, errs)
	}
	mr, err := daemon.StartMirror(context.Background(), daemon.Config{Listen: "127.0.0.1:0", MirrorDir: mdir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mr.Close() })
	mu, _ := url.Parse(mr.URL)
	host := mu.Host

	// oras, anonymous, against the mirror.
	site := newOCIUser(t)
	dst := t.TempDir()
	site.ok(t, cmd{dir: dst}, oras, "pull", "--plain-http", "-o", dst, host+"/demo/files:v1")
	if got := readFile(t, filepath.Join(dst, "readme.txt")); !bytes.Equal(got, readme) {
		t.Fatalf("oras pull from the mirror: %q", got)
	}
	rel := t.TempDir()
	site.ok(t, cmd{dir: rel}, oras, "pull", "--plain-http", "-o", rel, host+"/demo:2.0.0")
	if got := readFile(t, filepath.Join(rel, filepath.Base(reg.w.f2.Path))); !bytes.Equal(got, reg.w.f2.Content) {
		t.Fatalf("oras pull of a release from the mirror: %q", got)
	}
	var disc struct {
		Digest    string `json:"digest"`
		Referrers []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"referrers"`
	}
	if err := json.Unmarshal([]byte(site.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", host+"/demo/files:v1")), &disc); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, r := range disc.Referrers {
		types[r.ArtifactType] = r.Digest
	}
	if disc.Digest != pushed.Digest || len(disc.Referrers) != 2 || types["application/spdx+json"] != attached.Digest || types["application/vnd.cncf.notary.signature"] == "" {
		t.Fatalf("oras discover against the mirror: %+v", disc)
	}
	sb := t.TempDir()
	site.ok(t, cmd{dir: sb}, oras, "pull", "--plain-http", "-o", sb, host+"/demo/files@"+attached.Digest)
	if got := readFile(t, filepath.Join(sb, "sbom.spdx.json")); !bytes.Equal(got, sbom) {
		t.Fatalf("oras pull of the SBOM from the mirror: %q", got)
	}
	if out := site.fails(t, cmd{dir: src}, oras, "push", "--plain-http", host+"/demo/files:v2", "readme.txt"); !containsFold(out, "read-only mirror") {
		t.Fatalf("oras push to the mirror: %s", out)
	}

	// cairn get --via oci: the release's manifest from the mirror's /v2/, checked against TUF.
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", mr.URL, "--root", rootFile)
	got := t.TempDir()
	dl.ok(t, "get", "demo@2.0.0", "--via", "oci", "--as-of-bundle", "--output-dir", got)
	if b := readFile(t, filepath.Join(got, filepath.Base(reg.w.f2.Path))); !bytes.Equal(b, reg.w.f2.Content) {
		t.Fatalf("cairn get --via oci from the mirror: %q", b)
	}

	// notation verifies both signatures at the site, holding only the certificate and a
	// policy that trusts it for the mirror's repositories.
	crt := filepath.Join(u.home, ".config", "notation", "localkeys", "cairn-e2e.crt")
	site.ok(t, cmd{}, notation, "cert", "add", "--type", "ca", "--store", "cairn-e2e", crt)
	policy := fmt.Sprintf(`{"version":"1.0","trustPolicies":[{"name":"site","registryScopes":["%s/demo/files","%s/demo"],
		"signatureVerification":{"level":"strict"},"trustStores":["ca:cairn-e2e"],"trustedIdentities":["*"]}]}`, host, host)
	site.ok(t, cmd{}, notation, "policy", "import", "--force", writeFile(t, t.TempDir(), "trustpolicy.json", []byte(policy)))
	for _, ref := range []string{host + "/demo/files@" + pushed.Digest, host + "/demo@" + release} {
		if out := site.ok(t, cmd{}, notation, "verify", "--insecure-registry", ref); !strings.Contains(out, "Successfully verified signature for "+ref) {
			t.Fatalf("notation verify %s against the mirror: %s", ref, out)
		}
	}

	// The static layout serves the same files (a static server cannot run the referrers
	// filter or answer /v2/ itself: docs/mirror.md).
	static := staticDir(t)
	off.ok(t, "mirror", "import", bundle, "--static", static, "--root", rootFile)
	for _, p := range []string{"v2/demo/files/manifests/v1", "v2/demo/files/manifests/" + pushed.Digest, "v2/demo/files/referrers/" + pushed.Digest, "v2/demo/files/tags/list", "v2/demo/manifests/2.0.0"} {
		a, err1 := os.ReadFile(filepath.Join(static, p))
		b, err2 := os.ReadFile(filepath.Join(mdir, p))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("static %s differs from the mirror's: %v %v", p, err1, err2)
		}
	}

	// nginx with deploy/nginx/cairn-mirror.conf on the static directory: oras pulls and
	// discovers, notation verifies the artifact signed through the referrers API.
	ng := startNginxConf(t, nginxOrSkip(t), static, "../deploy/nginx/cairn-mirror.conf")
	nu, _ := url.Parse(ng)
	sdst := t.TempDir()
	site.ok(t, cmd{dir: sdst}, oras, "pull", "--plain-http", "-o", sdst, nu.Host+"/demo/files:v1")
	if got := readFile(t, filepath.Join(sdst, "readme.txt")); !bytes.Equal(got, readme) {
		t.Fatalf("oras pull from nginx: %q", got)
	}
	// By digest: a static server sends no Docker-Content-Digest for a tag, which oras
	// discover's HEAD needs (docs/mirror.md).
	if out := site.fails(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", nu.Host+"/demo/files:v1"); !strings.Contains(out, "Docker-Content-Digest") {
		t.Fatalf("oras discover by tag from nginx: %s", out)
	}
	if err := json.Unmarshal([]byte(site.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", nu.Host+"/demo/files@"+pushed.Digest)), &disc); err != nil || len(disc.Referrers) != 2 {
		t.Fatalf("oras discover from nginx: %v %+v", err, disc)
	}
	staticPolicy := strings.ReplaceAll(policy, host, nu.Host)
	site.ok(t, cmd{}, notation, "policy", "import", "--force", writeFile(t, t.TempDir(), "trustpolicy.json", []byte(staticPolicy)))
	if ref := nu.Host + "/demo/files@" + pushed.Digest; !strings.Contains(site.ok(t, cmd{}, notation, "verify", "--insecure-registry", ref), "Successfully verified signature for "+ref) {
		t.Fatalf("notation verify %s against nginx", ref)
	}
	if resp, _ := httpGet(t, ng+"/v2/demo/files/"+mirror.OCIRepositoryFile); resp.StatusCode != http.StatusNotFound {
		t.Errorf("nginx serves the repository record: %d", resp.StatusCode)
	}

	// Tampered bundles, each refused by verify and by import, the mirror unchanged.
	before := dirSums(t, mdir)
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mirror.Read(bytes.NewReader(raw), t.TempDir(), mirror.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	hexOf := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
	readmeBlob := digestOf(readme)
	for _, tt := range []struct {
		name string
		make func() []byte
		exit int
		want string
	}{
		{"a manifest's bytes changed", func() []byte { return flipMember(t, raw, "blobs/sha256/"+hexOf(pushed.Digest)) }, 1, "altered"},
		{"a blob's bytes changed", func() []byte { return flipMember(t, raw, "blobs/sha256/"+hexOf(readmeBlob)) }, 1, "altered"},
		{"a blob dropped", func() []byte {
			return rewriteBundle(t, b, func(f mirror.File) (mirror.File, bool) { return f, f.Path != "v2/demo/files/blobs/"+readmeBlob })
		}, 4, "does not carry"},
		{"an artifact added for a project the bundle does not hold", func() []byte {
			rec, _ := (&mirror.OCIRepository{Name: "evil"}).Encode()
			added := &mirror.Bundle{Info: b.Info, Files: append(slices.Clone(b.Files), mirror.BytesFile("v2/evil/"+mirror.OCIRepositoryFile, mirror.MediaTypeOCIRepository, rec))}
			return rewriteBundle(t, added, func(f mirror.File) (mirror.File, bool) { return f, true })
		}, 4, "not among the bundle's verified metadata"},
		{"a manifest's media type changed in the record", func() []byte {
			return rewriteBundle(t, b, func(f mirror.File) (mirror.File, bool) {
				if f.Path != "v2/demo/files/"+mirror.OCIRepositoryFile {
					return f, true
				}
				body, _ := f.ReadAll(1 << 20)
				rec, err := mirror.ParseOCIRepository(body)
				if err != nil {
					t.Fatal(err)
				}
				for i := range rec.Manifests {
					if rec.Manifests[i].Digest == pushed.Digest {
						rec.Manifests[i].MediaType = mirror.OCIImageIndex
					}
				}
				nb, _ := rec.Encode()
				return mirror.BytesFile(f.Path, f.MediaType, nb), true
			})
		}, 1, "the repository record"},
		{"a release tag moved", func() []byte {
			return rewriteBundle(t, b, func(f mirror.File) (mirror.File, bool) {
				if f.Path != "v2/demo/"+mirror.OCIRepositoryFile {
					return f, true
				}
				body, _ := f.ReadAll(1 << 20)
				rec, err := mirror.ParseOCIRepository(body)
				if err != nil {
					t.Fatal(err)
				}
				rec.Tags["2.0.0"] = rec.Tags["1.0.0"]
				nb, _ := rec.Encode()
				return mirror.BytesFile(f.Path, f.MediaType, nb), true
			})
		}, 1, "does not match what the maintainers signed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tampered.tar")
			if err := os.WriteFile(p, tt.make(), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, _, errs := off.run(t, "mirror", "verify", p, "--root", rootFile); code != tt.exit || !strings.Contains(errs, tt.want) {
				t.Errorf("cairn mirror verify: exit %d, %s; want %d mentioning %q", code, errs, tt.exit, tt.want)
			}
			if code, _, errs := cairnd(t, "mirror", "import", p, "--mirror-dir", mdir); code == 0 || !strings.Contains(errs, tt.want) {
				t.Errorf("cairnd mirror import: exit %d, %s", code, errs)
			}
			if after := dirSums(t, mdir); after != before {
				t.Error("a refused import changed the mirror directory")
			}
		})
	}
	// Still serving, unchanged.
	if resp, body := httpGet(t, mr.URL+"/v2/demo/files/manifests/v1"); resp.StatusCode != http.StatusOK || digestOf(body) != pushed.Digest {
		t.Errorf("after the refusals: %d, digest %s", resp.StatusCode, digestOf(body))
	}
}

// flipMember returns the bundle tar raw with one byte of member name changed (same size).
func flipMember(t *testing.T, raw []byte, name string) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(raw)), tar.NewWriter(&out)
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if hdr.Name == name && len(body) > 0 {
			body = slices.Clone(body)
			body[len(body)/2] ^= 1
			found = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	if !found {
		t.Fatalf("no member %s in the bundle", name)
	}
	return out.Bytes()
}

// rewriteBundle writes b again with each file mapped by edit (false: dropped), as an
// attacker with mirror.Write would: a well-formed bundle.
func rewriteBundle(t *testing.T, b *mirror.Bundle, edit func(mirror.File) (mirror.File, bool)) []byte {
	t.Helper()
	var files []mirror.File
	for _, f := range b.Files {
		if nf, keep := edit(f); keep {
			files = append(files, nf)
		}
	}
	var out bytes.Buffer
	if err := mirror.Write(&out, &mirror.Bundle{Info: b.Info, Files: files}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// mirrorOf exports project demo with the nested repository repo from reg's cairnd, stops
// the source, and imports the bundle into a running 'cairnd serve --mirror'; it returns
// the mirror's host:port.
func mirrorOf(t *testing.T, reg *ociRegistry, repo string) string {
	t.Helper()
	work := t.TempDir()
	rootFile := writeFile(t, work, "root.json", reg.w.r.RootJSON)
	c := newCLI(t, reg.w.r.AdminToken)
	c.ok(t, "init", "--server", reg.w.r.URL, "--root", rootFile)
	bundle := filepath.Join(work, "bundle.tar")
	c.ok(t, "mirror", "export", "--project", "demo", "--oci-repo", repo, "-o", bundle)
	if err := reg.w.r.Close(); err != nil {
		t.Fatal(err)
	}
	mdir := filepath.Join(work, "mirror")
	if code, out, errs := cairnd(t, "mirror", "import", bundle, "--mirror-dir", mdir, "--root", rootFile); code != 0 {
		t.Fatalf("cairnd mirror import: %d\n%s\n%s", code, out, errs)
	}
	mr, err := daemon.StartMirror(context.Background(), daemon.Config{Listen: "127.0.0.1:0", MirrorDir: mdir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mr.Close() })
	mu, _ := url.Parse(mr.URL)
	return mu.Host
}

// TestMirrorOCICosign: cosign signatures in both of cosign's schemes (the sha256-<hex>.sig
// tag, and an OCI 1.1 referrer) and an SBOM attestation, carried to a mirror, verify there
// with the key and no transparency log; the wrong key is refused there too.
func TestMirrorOCICosign(t *testing.T) {
	cosign := cosignClient(t)
	crane := ociClient(t, "crane")
	reg := newOCIRegistry(t, true)
	publishAll(t, reg.w.r)
	u := newOCIUser(t)
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, cosign, "login", reg.host, "-u", "cairn", "--password-stdin")
	dig := map[string]string{}
	for _, n := range []string{"tag", "oci11"} {
		dig[n] = pushImage(t, u, crane, reg.ref("demo/cosigned:"+n), true, map[string][]byte{"name": []byte(n)})
	}
	pw := []string{"COSIGN_PASSWORD=correct horse battery"}
	alice, mallory := t.TempDir(), t.TempDir()
	u.ok(t, cmd{dir: alice, env: pw}, cosign, "generate-key-pair")
	u.ok(t, cmd{dir: mallory, env: pw}, cosign, "generate-key-pair")
	key, pub, wrong := filepath.Join(alice, "cosign.key"), filepath.Join(alice, "cosign.pub"), filepath.Join(mallory, "cosign.pub")
	offline := []string{"--allow-insecure-registry", "--allow-http-registry"}
	u.ok(t, cmd{env: pw}, cosign, append(append([]string{"sign", "--key", key, "--tlog-upload=false", "--yes"}, offline...), reg.ref("demo/cosigned@"+dig["tag"]))...)
	u.ok(t, cmd{env: append(slices.Clone(pw), "COSIGN_EXPERIMENTAL=1")}, cosign, append(append([]string{"sign", "--key", key, "--tlog-upload=false", "--yes", "--registry-referrers-mode=oci-1-1"}, offline...), reg.ref("demo/cosigned@"+dig["oci11"]))...)
	sbom := writeFile(t, t.TempDir(), "sbom.spdx.json", []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"cosigned","dataLicense":"CC0-1.0"}`))
	u.ok(t, cmd{env: pw}, cosign, append(append([]string{"attest", "--key", key, "--tlog-upload=false", "--yes", "--type", "spdxjson", "--predicate", sbom}, offline...), reg.ref("demo/cosigned@"+dig["tag"]))...)

	host := mirrorOf(t, reg, "demo/cosigned")
	site := newOCIUser(t)
	verify := func(pubKey, n string, extra ...string) (string, string, int) {
		args := append(append([]string{"verify", "--key", pubKey, "--insecure-ignore-tlog=true"}, offline...), extra...)
		return site.run(t, cmd{}, cosign, append(args, host+"/demo/cosigned@"+dig[n])...)
	}
	for _, tt := range []struct {
		n     string
		extra []string
	}{{"tag", nil}, {"oci11", []string{"--experimental-oci11"}}} {
		if out, errs, code := verify(pub, tt.n, tt.extra...); code != 0 || !strings.Contains(out, dig[tt.n]) {
			t.Fatalf("cosign verify %s against the mirror: exit %d\n%s\n%s", tt.n, code, out, errs)
		}
		if _, _, code := verify(wrong, tt.n, tt.extra...); code == 0 {
			t.Fatalf("cosign verify %s against the mirror with the wrong key succeeded", tt.n)
		}
	}
	out, errs, code := site.run(t, cmd{}, cosign, append(append([]string{"verify-attestation", "--key", pub, "--insecure-ignore-tlog=true", "--type", "spdxjson"}, offline...), host+"/demo/cosigned@"+dig["tag"])...)
	if code != 0 || !strings.Contains(out, `"payloadType":"application/vnd.in-toto+json"`) {
		t.Fatalf("cosign verify-attestation against the mirror: exit %d\n%s\n%s", code, out, errs)
	}
}
