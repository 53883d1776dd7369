package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/imagebuild"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testenv"
)

// TestImage builds cairnd's container image the way `make image` does (internal/imagebuild:
// no Docker engine, no base image), twice, and checks that the two builds are the same
// bytes. It pushes the image with mkimage to a cairnd (Cairn hosts its own image), pulls it
// back with crane by tag and by digest for both platforms, checks the config (user,
// entrypoint, labels from the commit), finds each platform's SBOM through the referrers
// API and checks it against the binary's build information, unpacks the amd64 file
// system and runs cairnd from it (version, migrate, serve, GET /readyz) against a fresh
// PostgreSQL database: as root, chrooted into the image's file system as the image's user
// 65532, so that the static binary, /etc/passwd and /tmp are what is tested. Last, it
// signs the pushed image with notation (and cosign, when CAIRN_OCI_CLIENTS has it) and
// verifies the signatures.
//
// Building cairnd for two platforms is the slow part (minutes on a cold build cache); the
// second build is served by the cache.
func TestImage(t *testing.T) {
	crane, notation := ociClient(t, "crane"), ociClient(t, "notation")
	if _, err := exec.LookPath("git"); err != nil {
		testenv.MissingTool(t, "git is not installed: the image's labels come from the repository's history (apt-get install git)")
	}
	ctx := context.Background()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gitOut := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	rev := gitOut("rev-parse", "HEAD")
	ct, _ := strconv.ParseInt(gitOut("show", "-s", "--format=%ct", "HEAD"), 10, 64)
	commitTime := time.Unix(ct, 0).UTC()

	// Build 1: the library, as a program would use it.
	layout1 := filepath.Join(t.TempDir(), "image")
	res, err := imagebuild.Build(ctx, imagebuild.Options{ModuleDir: root, Out: layout1, Log: slog.New(slog.NewTextHandler(tlogWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != rev || !res.Created.Equal(commitTime) || len(res.Images) != 2 {
		t.Fatalf("build result: %+v; want revision %s created %s and two platforms", res, rev, commitTime)
	}

	// Build 2: the mkimage command that `make image` runs, into another directory: the
	// same commit gives the same digests.
	mkimage := filepath.Join(t.TempDir(), "mkimage")
	build := exec.Command("go", "build", "-o", mkimage, "./internal/tools/mkimage")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./internal/tools/mkimage: %v\n%s", err, out)
	}
	layout2 := filepath.Join(t.TempDir(), "image")
	mk := exec.Command(mkimage, "build", "-o", layout2)
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkimage build: %v\n%s", err, out)
	}
	lay, err := imagebuild.OpenLayout(layout2)
	if err != nil {
		t.Fatal(err)
	}
	if lay.Index.Digest != res.Index.Digest || lay.Tag != res.Tag || len(lay.SBOMs) != 2 {
		t.Fatalf("two builds of one commit differ: index %s tag %s (%d SBOMs), then %s %s: the build is not reproducible", res.Index.Digest, res.Tag, len(lay.SBOMs), lay.Index.Digest, lay.Tag)
	}
	for i, im := range res.Images {
		if lay.SBOMs[i].Digest != im.SBOM.Digest {
			t.Fatalf("two builds of one commit give two SBOMs for %s: %s, %s", im.Platform, im.SBOM.Digest, lay.SBOMs[i].Digest)
		}
	}
	// Rebuilding over a layout replaces it; over anything else is refused (unit-tested in
	// internal/imagebuild).

	// Push with mkimage to cairnd, with the credentials crane saved. Without credentials
	// the push is refused with the registry's reason and leaves no tag.
	reg := newOCIRegistry(t, true)
	anon := newOCIUser(t)
	if out := anon.fails(t, cmd{dir: root}, mkimage, "push", "-layout", layout2, reg.ref("demo/cairnd")); !containsFold(out, "pushing needs a Cairn token") {
		t.Fatalf("mkimage push without credentials: %s", out)
	}
	if st, _, body := reg.raw(t, "GET", "/v2/demo/cairnd/tags/list", "", nil); st == http.StatusOK && strings.Contains(string(body), res.Tag) {
		t.Fatalf("a refused push left a tag: %s", body)
	}
	u := newOCIUser(t)
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, crane, "auth", "login", reg.host, "-u", "cairn", "--password-stdin")
	repo := "demo/cairnd"
	out := u.ok(t, cmd{dir: root}, mkimage, "push", "-layout", layout2, reg.ref(repo))
	byDigest := reg.ref(repo + "@" + res.Index.Digest.String())
	byTag := reg.ref(repo + ":" + res.Tag)
	if !strings.HasPrefix(out, byDigest+"\n") {
		t.Fatalf("mkimage push printed %q, want %s first", out, byDigest)
	}

	// Pulled back with crane: the tag names the index; each platform resolves to its
	// manifest by tag and by digest, and its config is what the image promises.
	if got := strings.TrimSpace(u.ok(t, cmd{}, crane, "digest", "--insecure", byTag)); got != res.Index.Digest.String() {
		t.Fatalf("crane digest %s = %s, want the index %s", byTag, got, res.Index.Digest)
	}
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest   string            `json:"digest"`
			Platform map[string]string `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(u.ok(t, cmd{}, crane, "manifest", "--insecure", byTag)), &idx); err != nil || idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != 2 {
		t.Fatalf("the index pulled by tag: %+v %v", idx, err)
	}
	rootfs := ""
	for _, im := range res.Images {
		plat := im.Platform.String()
		for _, ref := range []string{byTag, byDigest} {
			if got := strings.TrimSpace(u.ok(t, cmd{}, crane, "digest", "--insecure", "--platform", plat, ref)); got != im.Manifest.Digest.String() {
				t.Fatalf("crane digest --platform %s %s = %s, want %s", plat, ref, got, im.Manifest.Digest)
			}
		}
		var cfg struct {
			Architecture string `json:"architecture"`
			OS           string `json:"os"`
			Created      string `json:"created"`
			Config       struct {
				User       string            `json:"User"`
				Entrypoint []string          `json:"Entrypoint"`
				Cmd        []string          `json:"Cmd"`
				Env        []string          `json:"Env"`
				WorkingDir string            `json:"WorkingDir"`
				Labels     map[string]string `json:"Labels"`
			} `json:"config"`
		}
		if err := json.Unmarshal([]byte(u.ok(t, cmd{}, crane, "config", "--insecure", "--platform", plat, byDigest)), &cfg); err != nil {
			t.Fatal(err)
		}
		c := cfg.Config
		wantLabels := map[string]string{
			imagebuild.LabelSource: "https://github.com/cairn-dev/cairn", imagebuild.LabelRevision: rev,
			imagebuild.LabelVersion: res.Version, imagebuild.LabelCreated: commitTime.Format(time.RFC3339),
		}
		for k, v := range wantLabels {
			if c.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", plat, k, c.Labels[k], v)
			}
		}
		if cfg.OS+"/"+cfg.Architecture != plat || c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/usr/local/bin/cairnd" ||
			strings.Join(c.Cmd, " ") != "serve" || c.WorkingDir != "/home/nonroot" || cfg.Created != commitTime.Format(time.RFC3339) {
			t.Fatalf("%s config: %+v", plat, cfg)
		}

		// crane pull by tag, for the platform: the image pulled is this platform's.
		pulled := filepath.Join(t.TempDir(), "pulled")
		u.ok(t, cmd{}, crane, "pull", "--insecure", "--platform", plat, "--format", "oci", byTag, pulled)
		if b, err := os.ReadFile(filepath.Join(pulled, "index.json")); err != nil || !strings.Contains(string(b), im.Manifest.Digest.String()) {
			t.Fatalf("crane pull --platform %s %s: index.json %s %v, want %s", plat, byTag, b, err, im.Manifest.Digest)
		}

		// The file system, flattened by crane export: a static binary for the platform.
		fsTar := filepath.Join(t.TempDir(), "fs.tar")
		u.ok(t, cmd{}, crane, "export", "--insecure", "--platform", plat, byDigest, fsTar)
		dir := filepath.Join(t.TempDir(), "rootfs")
		extractRootfs(t, fsTar, dir)
		bin := filepath.Join(dir, "usr/local/bin/cairnd")
		checkStaticELF(t, bin, im.Platform.Arch)
		for _, f := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "etc/nsswitch.conf"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Fatalf("%s: /%s is missing from the image: %v", plat, f, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
			t.Fatalf("%s: /tmp is %v (%v), want a sticky world-writable directory", plat, fi.Mode(), err)
		}

		// The SBOM is a referrer of the platform's manifest, and lists what the binary's
		// build information lists.
		sboms := referrers(t, reg, repo, im.Manifest.Digest.String(), "")[imagebuild.SPDXMediaType]
		if len(sboms) != 1 || sboms[0] != im.SBOM.Digest.String() {
			t.Fatalf("referrers of the %s image: SBOMs %v, want [%s]", plat, sboms, im.SBOM.Digest)
		}
		checkSBOM(t, u, crane, reg.ref(repo), im, bin, res.Version)

		if im.Platform.Arch == "amd64" {
			rootfs = dir
		}
	}
	if rootfs == "" {
		t.Fatal("no linux/amd64 image")
	}
	t.Run("run", func(t *testing.T) { runImage(t, rootfs, res.Version, rev, res.Dirty) })

	// Signed with notation (the referrers API), verified by a user who holds the
	// certificate and the trust policy.
	u.ok(t, cmd{}, notation, "cert", "generate-test", "--default", "cairn-release")
	policy := fmt.Sprintf(`{"version":"1.0","trustPolicies":[{"name":"cairn-image","registryScopes":["%s"],
		"signatureVerification":{"level":"strict"},"trustStores":["ca:cairn-release"],"trustedIdentities":["*"]}]}`, reg.ref(repo))
	u.ok(t, cmd{}, notation, "policy", "import", "--force", writeFile(t, t.TempDir(), "trustpolicy.json", []byte(policy)))
	if out := u.ok(t, cmd{}, notation, "sign", "--insecure-registry", "--force-referrers-tag=false", byDigest); !strings.Contains(out, "Successfully signed") {
		t.Fatalf("notation sign: %s", out)
	}
	if sigs := referrers(t, reg, repo, res.Index.Digest.String(), "")["application/vnd.cncf.notary.signature"]; len(sigs) != 1 {
		t.Fatalf("referrers of the index after notation sign: %v", sigs)
	}
	verifier := newOCIUser(t)
	verifier.ok(t, cmd{}, notation, "cert", "add", "--type", "ca", "--store", "cairn-release", filepath.Join(u.home, ".config", "notation", "localkeys", "cairn-release.crt"))
	verifier.ok(t, cmd{}, notation, "policy", "import", "--force", writeFile(t, t.TempDir(), "trustpolicy.json", []byte(policy)))
	if out := verifier.ok(t, cmd{}, notation, "verify", "--insecure-registry", byDigest); !strings.Contains(out, "Successfully verified signature for "+byDigest) {
		t.Fatalf("notation verify: %s", out)
	}

	t.Run("cosign", func(t *testing.T) {
		// cosign takes 10-15 minutes to build: it is used when the OCI clients' directory
		// already has it (make oci-clients), never built for this test.
		p := filepath.Join(os.Getenv("CAIRN_OCI_CLIENTS"), "cosign")
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			testenv.OptIn(t, "no cosign in CAIRN_OCI_CLIENTS: make oci-clients builds it (10-15 min cold); the image is then also signed with cosign")
		}
		pw := []string{"COSIGN_PASSWORD=image test"}
		keys := t.TempDir()
		u.ok(t, cmd{dir: keys, env: pw}, p, "generate-key-pair")
		offline := []string{"--allow-insecure-registry", "--allow-http-registry"}
		u.ok(t, cmd{env: pw}, p, append(append([]string{"sign", "--key", filepath.Join(keys, "cosign.key"), "--tlog-upload=false", "--yes"}, offline...), byDigest)...)
		out := u.ok(t, cmd{}, p, append(append([]string{"verify", "--key", filepath.Join(keys, "cosign.pub"), "--insecure-ignore-tlog=true"}, offline...), byDigest)...)
		if !strings.Contains(out, res.Index.Digest.String()) {
			t.Fatalf("cosign verify: %s", out)
		}
	})
}

// runImage runs cairnd from the image's file system: version, migrate, then serve until
// /readyz answers 200. As root it runs chrooted into the file system as the image's user,
// which is what a container runtime does minus the namespaces; otherwise the binary runs
// on the host as the current user.
func runImage(t *testing.T, rootfs, version, revision string, dirty bool) {
	dbURL, drop, err := testdb.Create("e2e_image_run")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	chroot := os.Geteuid() == 0
	if !chroot {
		t.Log("not root: cairnd runs from the image's file system but not chrooted into it as user 65532")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	command := func(args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(rootfs, "usr/local/bin/cairnd"), args...)
		c.Env = []string{"PATH=/usr/local/bin", "HOME=/home/nonroot"}
		if chroot {
			c.Path = "/usr/local/bin/cairnd"
			c.Dir = "/home/nonroot"
			c.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		}
		return c
	}
	if chroot {
		// The root of the chroot must be searchable by 65532 (t.TempDir makes it 0700).
		if err := os.Chmod(rootfs, 0o755); err != nil {
			t.Fatal(err)
		}
		dataDir = "/tmp/cairn-data"
	}
	// cairnd version reads the binary's build information: the version label is what it
	// says, and its commit the revision label. Only a dirty git worktree builds without
	// VCS stamping (internal/imagebuild), and cairnd then says (devel).
	out, err := command("version", "--output", "json").CombinedOutput()
	var info struct{ Version, Revision, Platform string }
	if err != nil || json.Unmarshal(out, &info) != nil || info.Platform != "linux/amd64" {
		t.Fatalf("cairnd version --output json: %v\n%s", err, out)
	}
	if info.Version == "(devel)" && dirty {
		t.Logf("cairnd version says (devel): the image was built from a dirty git worktree, which the go command stamps no VCS information into")
	} else if info.Version != version || info.Revision != revision {
		t.Fatalf("cairnd version: %s %s, want the labels' %s %s", info.Version, info.Revision, version, revision)
	}
	// The static binary has no PKCS#11 and says so, naming the way out.
	out, err = command("keys", "public", "--key", "pkcs11:token=cairn;object=timestamp?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "static container image of make image") || !strings.Contains(string(out), "deploy/Dockerfile") {
		t.Fatalf("cairnd keys public with a pkcs11: key in the image: %v\n%s", err, out)
	}
	if out, err := command("migrate", "--database-url", dbURL).CombinedOutput(); err != nil {
		t.Fatalf("cairnd migrate: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	srv := command("serve", "--dev", "--data-dir", dataDir, "--database-url", dbURL, "--listen", addr, "--log-level", "warn")
	var stderr bytes.Buffer
	srv.Stdout, srv.Stderr = &stderr, &stderr
	if err := srv.Start(); err != nil {
		t.Fatalf("starting cairnd serve from the image: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("cairnd serve output:\n%s", stderr.String())
		}
	})
	waitUp(t, "http://"+addr, done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz of cairnd from the image: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("cairnd from the image (chroot as 65532: %v): version %s, migrate, serve, GET /readyz 200", chroot, version)
	if chroot {
		// It wrote its development keys as 65532 into the image's /tmp.
		fi, err := os.Stat(filepath.Join(rootfs, "tmp", "cairn-data"))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65532 {
			t.Fatalf("the data directory in the image's /tmp: %v, want one owned by 65532", err)
		}
	}
}

// checkSBOM fetches the platform's SBOM with crane and compares it with the build
// information of the binary pulled from the image.
func checkSBOM(t *testing.T, u *ociUser, crane, repoRef string, im imagebuild.PlatformImage, bin, version string) {
	t.Helper()
	var m struct {
		ArtifactType string `json:"artifactType"`
		Subject      struct {
			Digest string `json:"digest"`
		} `json:"subject"`
		Layers []struct {
			MediaType, Digest string
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(u.ok(t, cmd{}, crane, "manifest", "--insecure", repoRef+"@"+im.SBOM.Digest.String())), &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != imagebuild.SPDXMediaType || m.Subject.Digest != im.Manifest.Digest.String() || len(m.Layers) != 1 || m.Layers[0].MediaType != imagebuild.SPDXMediaType {
		t.Fatalf("%s SBOM manifest: %+v", im.Platform, m)
	}
	var doc imagebuild.SPDXDocument
	if err := json.Unmarshal([]byte(u.ok(t, cmd{}, crane, "blob", "--insecure", repoRef+"@"+m.Layers[0].Digest)), &doc); err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]imagebuild.SPDXPackage{}
	for _, p := range doc.Packages {
		pkgs[p.Name] = p
	}
	if doc.SPDXVersion != "SPDX-2.3" || pkgs[info.Main.Path].VersionInfo != version || pkgs[info.Main.Path].Checksums[0].ChecksumValue != im.Binary {
		t.Fatalf("%s SBOM: version %s, main package %+v; want %s with the binary's hash %s", im.Platform, doc.SPDXVersion, pkgs[info.Main.Path], version, im.Binary)
	}
	if len(info.Deps) < 50 {
		t.Fatalf("cairnd's build information lists %d modules: not the binary from the image?", len(info.Deps))
	}
	for _, d := range info.Deps {
		p, ok := pkgs[d.Path]
		if !ok || p.VersionInfo != d.Version || len(p.Checksums) != 1 || len(p.ExternalRefs) != 1 || !strings.HasPrefix(p.ExternalRefs[0].ReferenceLocator, "pkg:golang/") {
			t.Fatalf("%s SBOM: module %s@%s: %+v", im.Platform, d.Path, d.Version, p)
		}
	}
}

// checkStaticELF: the binary is for arch and has no program interpreter (no libc needed).
func checkStaticELF(t *testing.T, path, arch string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Fatalf("%s is for %v, want %v", path, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has a program interpreter: it is not static and the image has no libc", path)
		}
	}
}

// extractRootfs unpacks a flattened image file system (crane export), keeping modes and,
// as root, owners. Only directories and regular files are expected.
func extractRootfs(t *testing.T, tarPath, dir string) {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var dirs []dirMode
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean("/" + h.Name)
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, dirMode{p, h.FileInfo().Mode()})
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, h.FileInfo().Mode().Perm())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected entry %s (type %c) in the image's file system", h.Name, h.Typeflag)
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range dirs { // after the files, so that 0700 directories were writable
		if err := os.Chmod(d.path, d.mode&(os.ModePerm|os.ModeSticky)); err != nil {
			t.Fatal(err)
		}
	}
}

// tlogWriter sends the image builder's log lines to the test log.
type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
