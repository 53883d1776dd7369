package oci_test

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Real OCI clients, cached in <user cache>/cairn/ociclients. oras and crane build in
// under a minute and are installed by the tests themselves; cosign (~15 minutes cold) and
// notation are installed only by `make oci-clients`, and their tests say so when absent.
var quickClients = map[string]string{
	"oras":  "oras.land/oras/cmd/oras@v1.3.6",
	"crane": "github.com/google/go-containerregistry/cmd/crane@v0.22.1",
}

func clientDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "cairn", "ociclients")
}

// client returns the path of an OCI client, installing the quick ones.
func client(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(clientDir(), name)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	pkg, ok := quickClients[name]
	if !ok {
		t.Skipf("%s is not installed in %s: run `make oci-clients` (it takes long to build, so plain test runs do not)", name, clientDir())
	}
	cmd := exec.Command("go", "install", pkg)
	cmd.Env = append(os.Environ(), "GOBIN="+clientDir(), "GOTOOLCHAIN=local", "GOFLAGS=")
	cmd.Dir = os.TempDir() // outside this module: the client's own go.mod decides
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// clientEnv is an environment whose Docker config logs in to host with token.
func clientEnv(t *testing.T, host, token string) []string {
	t.Helper()
	dir := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("cairn:" + token))}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "DOCKER_CONFIG="+dir, "HOME="+dir)
}

func run(t *testing.T, env []string, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOras: push, attach an SBOM (referrers API), discover it, pull.
func TestOras(t *testing.T) {
	r, tok := registry(t)
	oras := client(t, "oras")
	env := clientEnv(t, r.Addr, tok["alpha"])
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte("hello from oras"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "sbom.json"), []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := r.Addr + "/alpha/oras:v1"
	run(t, env, work, oras, "push", "--plain-http", ref, "hello.txt:text/plain")
	run(t, env, work, oras, "attach", "--plain-http", "--distribution-spec", "v1.1-referrers-api", "--artifact-type", "application/spdx+json", ref, "sbom.json:application/spdx+json")
	out := run(t, env, work, oras, "discover", "--plain-http", "--format", "json", ref)
	if !strings.Contains(out, "application/spdx+json") {
		t.Fatalf("oras discover does not list the SBOM:\n%s", out)
	}
	pulled := t.TempDir()
	run(t, env, work, oras, "pull", "--plain-http", "-o", pulled, ref)
	if b, err := os.ReadFile(filepath.Join(pulled, "hello.txt")); err != nil || string(b) != "hello from oras" {
		t.Fatalf("oras pull: %q %v", b, err)
	}
	// A push into another project's repository is refused.
	cmd := exec.Command(oras, "push", "--plain-http", r.Addr+"/beta/oras:v1", "hello.txt:text/plain")
	cmd.Env, cmd.Dir = env, work
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(strings.ToLower(string(out)), "denied") {
		t.Fatalf("oras push into beta with alpha's token: %v\n%s", err, out)
	}
}

// TestCrane: an image built from a layer tarball, copied across repositories (mount),
// listed, deleted.
func TestCrane(t *testing.T) {
	r, tok := registry(t)
	crane := client(t, "crane")
	env := clientEnv(t, r.Addr, tok["alpha"])
	work := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("#!/bin/sh\necho hi\n")
	_ = tw.WriteHeader(&tar.Header{Name: "hi.sh", Mode: 0o755, Size: int64(len(body))})
	_, _ = tw.Write(body)
	_ = tw.Close()
	if err := os.WriteFile(filepath.Join(work, "layer.tar"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img := r.Addr + "/alpha/crane"
	run(t, env, work, crane, "append", "--insecure", "-f", "layer.tar", "-t", img+":v1")
	dig := strings.TrimSpace(run(t, env, work, crane, "digest", "--insecure", img+":v1"))
	run(t, env, work, crane, "copy", "--insecure", img+":v1", r.Addr+"/alpha/crane-copy:v1")
	if d := strings.TrimSpace(run(t, env, work, crane, "digest", "--insecure", r.Addr+"/alpha/crane-copy:v1")); d != dig {
		t.Fatalf("copy digest %s, want %s", d, dig)
	}
	run(t, env, work, crane, "tag", "--insecure", img+":v1", "v2")
	if ls := run(t, env, work, crane, "ls", "--insecure", img); !strings.Contains(ls, "v1") || !strings.Contains(ls, "v2") {
		t.Fatalf("crane ls: %s", ls)
	}
	out := t.TempDir()
	run(t, env, work, crane, "export", "--insecure", img+":v2", filepath.Join(out, "fs.tar"))
	run(t, env, work, crane, "delete", "--insecure", img+"@"+dig)
	cmd := exec.Command(crane, "manifest", "--insecure", img+":v1")
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("the manifest survived its deletion: %s", b)
	}
}

// TestNotation signs an image with a test certificate; the signature goes through the
// referrers API, and notation verifies it against a trust policy.
func TestNotation(t *testing.T) {
	notation := client(t, "notation")
	r, tok := registry(t)
	env := clientEnv(t, r.Addr, tok["alpha"])
	home := t.TempDir()
	env = append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "NOTATION_USERNAME=cairn", "NOTATION_PASSWORD="+tok["alpha"])
	work := t.TempDir()
	ref := pushTestImage(t, r.URL, "alpha/notation", "basic:"+tok["alpha"])
	full := r.Addr + "/" + ref
	run(t, env, work, notation, "cert", "generate-test", "--default", "cairn.test")
	policy := `{"version":"1.0","trustPolicies":[{"name":"cairn","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:cairn.test"],"trustedIdentities":["*"]}]}`
	if err := os.WriteFile(filepath.Join(work, "policy.json"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, env, work, notation, "policy", "import", "--force", "policy.json")
	run(t, env, work, notation, "sign", "--insecure-registry", full)
	if out := run(t, env, work, notation, "ls", "--insecure-registry", full); !strings.Contains(out, "application/vnd.cncf.notary.signature") {
		t.Fatalf("notation ls shows no signature:\n%s", out)
	}
	run(t, env, work, notation, "verify", "--insecure-registry", full)
}

// pushTestImage pushes a one-layer image and returns repo@digest.
func pushTestImage(t *testing.T, base, repo, auth string) string {
	t.Helper()
	layer, config := []byte("layer of "+repo), []byte(`{"architecture":"amd64","os":"linux"}`)
	pushBlob(t, base, repo, auth, layer)
	cfg := pushBlob(t, base, repo, auth, config)
	m := imageManifest(cfg, len(config), layer)
	p := do(t, base, req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: auth, body: m, header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}})
	if p.status != 201 {
		t.Fatalf("pushing the test image: %d %s", p.status, p.body)
	}
	return repo + "@" + sha(m)
}

// TestCosign signs with a key, without a transparency log, in both schemes: the tag
// scheme (sha256-<digest>.sig) and the OCI 1.1 referrers API; cosign verifies each.
func TestCosign(t *testing.T) {
	cosign := client(t, "cosign")
	r, tok := registry(t)
	env := append(clientEnv(t, r.Addr, tok["alpha"]), "COSIGN_PASSWORD=", "COSIGN_YES=true")
	work := t.TempDir()
	run(t, env, work, cosign, "generate-key-pair")
	insecure := []string{"--allow-insecure-registry", "--allow-http-registry"}
	for _, scheme := range []struct {
		name   string
		sign   []string
		verify []string
	}{
		{"tag", nil, nil},
		{"referrers", []string{"--registry-referrers-mode=oci-1-1"}, []string{"--experimental-oci11"}},
	} {
		t.Run(scheme.name, func(t *testing.T) {
			ref := r.Addr + "/" + pushTestImage(t, r.URL, "alpha/cosign-"+scheme.name, "basic:"+tok["alpha"])
			envx := append(env, "COSIGN_EXPERIMENTAL=1")
			args := append(append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false"}, insecure...), scheme.sign...)
			run(t, envx, work, cosign, append(args, ref)...)
			args = append(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true"}, insecure...), scheme.verify...)
			run(t, envx, work, cosign, append(args, ref)...)
			if scheme.name == "referrers" {
				i := strings.LastIndex(ref, "@")
				repo, dig := strings.TrimPrefix(ref[:i], r.Addr+"/"), ref[i+1:]
				got := do(t, r.URL, req{method: "GET", path: "/v2/" + repo + "/referrers/" + dig})
				if got.status != 200 || !strings.Contains(string(got.body), `"manifests":[{`) {
					t.Fatalf("referrers after cosign sign: %d %s", got.status, got.body)
				}
			}
		})
	}
}
