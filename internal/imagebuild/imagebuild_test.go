package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"linux/amd64", "linux/amd64", ""},
		{"linux/arm64", "linux/arm64", ""},
		{"linux/riscv64", "", "built for linux/amd64, linux/arm64 only"},
		{"darwin/arm64", "", "built for linux/amd64, linux/arm64 only"},
		{"", "", `platform ""`},
	} {
		p, err := ParsePlatform(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePlatform(%q): %v, want an error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("ParsePlatform(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

// TestLayerTar: a layer is the same bytes every time, and carries the modes and owners
// the image needs (a sticky world-writable /tmp, the nonroot user's home).
func TestLayerTar(t *testing.T) {
	mtime := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, err := layerTar(baseEntries([]byte("pem")), mtime)
	if err != nil {
		t.Fatal(err)
	}
	b, err := layerTar(baseEntries([]byte("pem")), mtime.Add(300*time.Millisecond).In(time.FixedZone("x", 3600)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same entries and commit second gave different layer bytes")
	}
	want := map[string]struct {
		mode int64
		uid  int
	}{"tmp/": {0o1777, 0}, "home/nonroot/": {0o700, nonrootUID}, "etc/passwd": {0o644, 0}, CABundlePath[1:]: {0o644, 0}}
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(mtime) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %s uname %q gname %q, want %s and no names", h.Name, h.ModTime, h.Uname, h.Gname, mtime)
		}
		if w, ok := want[h.Name]; ok {
			if h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.uid {
				t.Errorf("%s: mode %o uid %d gid %d, want %o %d", h.Name, h.Mode, h.Uid, h.Gid, w.mode, w.uid)
			}
			delete(want, h.Name)
		}
		if h.Name == "etc/passwd" {
			b, _ := io.ReadAll(tr)
			if !strings.Contains(string(b), "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no nonroot user 65532: %s", b)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("missing from the base layer: %v", want)
	}
}

func testCertPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestReadCABundle: a bundle that is not all certificates fails the build with what is
// wrong, instead of shipping an image whose TLS fails.
func TestReadCABundle(t *testing.T) {
	cert := testCertPEM(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte // nil: no file
		certs   int
		err     string
	}{
		{"two certificates", append(append([]byte{}, cert...), cert...), 2, ""},
		{"missing", nil, 0, "apt-get install ca-certificates"},
		{"empty", []byte{}, 0, "no PEM certificate"},
		{"a private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), 0, `block 1 is "PRIVATE KEY"`},
		{"a broken certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 0, "certificate 1:"},
		{"trailing garbage", append(append([]byte{}, cert...), "not pem"...), 0, "text after certificate 1 is not PEM"},
		{"too large", bytes.Repeat([]byte{'a'}, maxCABundle+1), 0, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if tc.content != nil {
				if err := os.WriteFile(p, tc.content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, n, err := readCABundle(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || n != tc.certs || !bytes.Equal(b, tc.content) {
				t.Fatalf("got %d certificates, %v; want %d", n, err, tc.certs)
			}
		})
	}
}

func TestH1ToSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("tree"))
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"h1:" + base64.StdEncoding.EncodeToString(sum[:]), hex.EncodeToString(sum[:]), true},
		{"", "", false},
		{"h2:" + base64.StdEncoding.EncodeToString(sum[:]), "", false},
		{"h1:not base64!", "", false},
		{"h1:" + base64.StdEncoding.EncodeToString(sum[:16]), "", false},
	} {
		if got, ok := h1ToSHA256(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("h1ToSHA256(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestSBOM: the SBOM of a Go binary lists the main module, the standard library and
// every module its build information lists, each with its version, go.sum hash (hex) and
// PURL; a replaced module is listed as its replacement; the document is the same bytes
// for the same input.
func TestSBOM(t *testing.T) {
	// A test binary's build information lists no modules: build a real program (mkimage,
	// which links go-containerregistry and more).
	exe := filepath.Join(t.TempDir(), "mkimage")
	if out, err := exec.Command("go", "build", "-o", exe, "../tools/mkimage").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	info, err := buildinfo.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Deps) == 0 {
		t.Fatal("the test binary's build information lists no dependencies")
	}
	// A replaced module, as a replace directive in go.mod records it.
	rsum := sha256.Sum256([]byte("fork"))
	info.Deps = append(info.Deps, &debug.Module{Path: "example.com/Upstream/lib", Version: "v1.0.0", Sum: "h1:AAAA",
		Replace: &debug.Module{Path: "example.com/fork/lib", Version: "v1.0.1-fork", Sum: "h1:" + base64.StdEncoding.EncodeToString(rsum[:])}})
	in := sbomInput{info: info, binSHA256: strings.Repeat("ab", 32), version: "v1.2.3", revision: "0123abcd", platform: Platform{"linux", "arm64", "v8"},
		created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), source: "https://github.com/cairn-dev/cairn", ca: caPackage{sha256: strings.Repeat("cd", 32), version: "20230311+deb12u1", distro: "debian-12"}}
	b, err := buildSBOM(in)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := buildSBOM(in); !bytes.Equal(b, again) {
		t.Fatal("the same input gave two different SBOMs")
	}
	var doc SPDXDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo.Created != "2026-03-01T12:00:00Z" || !strings.Contains(doc.DocumentNamespace, "/v1.2.3/linux-arm64/abab") {
		t.Fatalf("document header: %+v %+v", doc, doc.CreationInfo)
	}
	byName := map[string]SPDXPackage{}
	ids := map[string]bool{}
	for _, p := range doc.Packages {
		byName[p.Name] = p
		if ids[p.SPDXID] {
			t.Errorf("SPDXID %s is used twice", p.SPDXID)
		}
		ids[p.SPDXID] = true
	}
	purl := func(p SPDXPackage) string {
		for _, r := range p.ExternalRefs {
			if r.ReferenceType == "purl" {
				return r.ReferenceLocator
			}
		}
		return ""
	}
	main := byName[info.Main.Path]
	if main.VersionInfo != "v1.2.3" || main.Checksums[0].ChecksumValue != in.binSHA256 || purl(main) != "pkg:golang/"+info.Main.Path+"@v1.2.3" || main.PrimaryPackagePurpose != "APPLICATION" ||
		main.DownloadLocation != "git+https://github.com/cairn-dev/cairn@0123abcd" {
		t.Errorf("main package: %+v", main)
	}
	if std := byName["stdlib"]; std.VersionInfo != info.GoVersion || purl(std) != "pkg:golang/stdlib@"+strings.TrimPrefix(info.GoVersion, "go") {
		t.Errorf("stdlib package: %+v", std)
	}
	for _, m := range info.Deps {
		if m.Replace != nil {
			continue
		}
		p, ok := byName[m.Path]
		if !ok {
			t.Errorf("dependency %s is not in the SBOM", m.Path)
			continue
		}
		want, _ := h1ToSHA256(m.Sum)
		if p.VersionInfo != m.Version || len(p.Checksums) != 1 || p.Checksums[0].ChecksumValue != want || !strings.HasPrefix(purl(p), "pkg:golang/") || !strings.HasSuffix(purl(p), "@"+strings.ReplaceAll(m.Version, "+", "%2B")) {
			t.Errorf("dependency %s: %+v, want version %s and checksum %s", m.Path, p, m.Version, want)
		}
	}
	if _, ok := byName["example.com/Upstream/lib"]; ok {
		t.Error("the replaced module is listed; want its replacement")
	}
	if f := byName["example.com/fork/lib"]; f.VersionInfo != "v1.0.1-fork" || f.Checksums[0].ChecksumValue != hex.EncodeToString(rsum[:]) ||
		purl(f) != "pkg:golang/example.com/fork/lib@v1.0.1-fork" || !strings.Contains(f.Comment, "replaces example.com/Upstream/lib@v1.0.0") {
		t.Errorf("replacement: %+v", f)
	}
	if ca := byName["ca-certificates"]; purl(ca) != "pkg:deb/debian/ca-certificates@20230311%2Bdeb12u1?arch=all&distro=debian-12" || ca.Checksums[0].ChecksumValue != in.ca.sha256 {
		t.Errorf("ca-certificates: %+v (purl %s)", ca, purl(ca))
	}
	deps := 0
	for _, r := range doc.Relationships {
		if r.SPDXElementID == "SPDXRef-Package-cairnd" && r.RelationshipType == "DEPENDS_ON" {
			deps++
		}
		if !ids[r.RelatedSPDXElement] {
			t.Errorf("relationship %+v names an unknown element", r)
		}
	}
	if deps != len(info.Deps)+1 {
		t.Errorf("%d DEPENDS_ON relationships, want %d (every module and stdlib)", deps, len(info.Deps)+1)
	}

	info.Main.Path = ""
	if _, err := buildSBOM(in); err == nil || !strings.Contains(err.Error(), "names no main module") {
		t.Errorf("no main module: %v", err)
	}
}

// TestBuildRefusesToReplace: Build replaces only an OCI layout; any other directory is
// refused before anything is built, and left as it was.
func TestBuildRefusesToReplace(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), Options{Out: dir, ModuleDir: "../.."})
	if err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Fatalf("Build into a non-layout directory: %v", err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
		t.Fatalf("the directory was changed: %q %v", b, err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		err  string
	}{
		{"no output", Options{}, "no output directory"},
		{"unknown platform", Options{Out: t.TempDir(), Platforms: []Platform{{"linux", "s390x", ""}}}, "built for linux/amd64, linux/arm64 only"},
		{"a platform twice", Options{Out: t.TempDir(), Platforms: []Platform{{"linux", "amd64", ""}, {"linux", "amd64", ""}}}, "listed twice"},
		{"no CA bundle", Options{Out: t.TempDir(), ModuleDir: "../..", CACertificates: filepath.Join(dir, "none.crt")}, "apt-get install ca-certificates"},
	} {
		if _, err := Build(context.Background(), tc.o); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.err)
		}
	}
}

func TestOpenLayoutErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := OpenLayout(empty); err == nil || !strings.Contains(err.Error(), "make image") {
		t.Errorf("an empty directory: %v", err)
	}
	noTag := t.TempDir()
	_ = os.WriteFile(filepath.Join(noTag, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	_ = os.WriteFile(filepath.Join(noTag, "index.json"), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`), 0o644)
	if _, err := OpenLayout(noTag); err == nil || !strings.Contains(err.Error(), "no image index with a ref.name") {
		t.Errorf("a layout without the image: %v", err)
	}
}
