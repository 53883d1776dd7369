// Package imagebuild builds cairnd's container image without a Docker engine or a base
// image from a registry: cairnd is cross-compiled statically (CGO_ENABLED=0) for each
// platform, put on a minimal base made here (passwd and group with the nonroot user
// 65532, the build machine's CA bundle, /tmp), and written with go-containerregistry as
// a multi-platform OCI image layout, with an SPDX SBOM per platform stored beside it as
// an OCI 1.1 referrer of that platform's manifest. Push copies the layout to a registry.
//
// Everything in the image is a function of the commit: file times, the config's created
// time and the labels come from the commit, so that building the same commit twice gives
// the same digests (README "Container image", DESIGN.md "The container image").
package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI annotation and label keys (image-spec annotations.md).
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
	refName       = "org.opencontainers.image.ref.name"

	// emptyJSONMediaType is the config of an artifact manifest (image-spec 1.1).
	emptyJSONMediaType = "application/vnd.oci.empty.v1+json"
)

// Platform is an image platform; only Linux ones, as the base is a Linux file system.
type Platform struct{ OS, Arch, Variant string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the ones the image is built for by default, and the ones accepted.
var supported = []Platform{{"linux", "amd64", ""}, {"linux", "arm64", "v8"}}

// DefaultPlatforms returns linux/amd64 and linux/arm64.
func DefaultPlatforms() []Platform { return append([]Platform(nil), supported...) }

// ParsePlatform parses "linux/amd64" or "linux/arm64".
func ParsePlatform(s string) (Platform, error) {
	var names []string
	for _, p := range supported {
		if s == p.String() {
			return p, nil
		}
		names = append(names, p.String())
	}
	return Platform{}, fmt.Errorf("platform %q: the image is built for %s only (static Linux binaries on a Linux base)", s, strings.Join(names, ", "))
}

// Options say what to build and where.
type Options struct {
	ModuleDir      string     // the repository (with go.mod and .git); default "."
	Out            string     // the OCI image layout directory to (re)write; required
	Platforms      []Platform // default DefaultPlatforms()
	CACertificates string     // PEM bundle to copy in; default /etc/ssl/certs/ca-certificates.crt
	Source         string     // org.opencontainers.image.source; default https://<module path>
	Go             string     // the go command; default "go"
	Log            *slog.Logger
}

// Result describes the layout Build wrote.
type Result struct {
	Tag      string // the layout's ref.name for the image index, also the default push tag
	Version  string // org.opencontainers.image.version, what `cairnd version` prints
	Revision string // the commit
	Dirty    bool   // the work tree had changes: the image is not the commit's
	Created  time.Time
	Source   string
	Index    v1.Descriptor
	Images   []PlatformImage
}

// PlatformImage is one platform's image in the index and its SBOM.
type PlatformImage struct {
	Platform Platform
	Manifest v1.Descriptor
	SBOM     v1.Descriptor // the referrer manifest (artifactType application/spdx+json)
	Binary   string        // sha256 hex of the cairnd binary
}

// vcsInfo is what the labels are made of.
type vcsInfo struct {
	revision string
	time     time.Time
	dirty    bool
	version  string // a tag v* at HEAD, or a Go-style pseudo-version
}

var tagRe = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+([-.+][0-9A-Za-z.+-]*)?$`)

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// readVCS reads the commit, its time and whether the tree is dirty the way the go command
// stamps them into binaries (vcs.revision, vcs.time, vcs.modified: `git status
// --porcelain` not empty), and a version for when the go command stamps none: the v* tag
// at HEAD, or else a pseudo-version v0.0.0-<commit time>-<12 hex of the commit>;
// "+dirty" when the tree has changes.
func readVCS(ctx context.Context, dir string) (vcsInfo, error) {
	var v vcsInfo
	var err error
	if v.revision, err = git(ctx, dir, "rev-parse", "HEAD"); err != nil {
		return v, fmt.Errorf("the image's revision label needs the repository's git history: %w", err)
	}
	ct, err := git(ctx, dir, "show", "-s", "--format=%ct", "HEAD")
	if err != nil {
		return v, err
	}
	sec, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return v, fmt.Errorf("commit time %q: %w", ct, err)
	}
	v.time = time.Unix(sec, 0).UTC()
	st, err := git(ctx, dir, "status", "--porcelain")
	if err != nil {
		return v, err
	}
	v.dirty = st != ""
	if tags, err := git(ctx, dir, "tag", "--points-at", "HEAD", "--list", "v*"); err == nil {
		for _, t := range strings.Fields(tags) {
			if tagRe.MatchString(t) {
				v.version = t
				break
			}
		}
	}
	if v.version == "" {
		v.version = "v0.0.0-" + v.time.Format("20060102150405") + "-" + v.revision[:12]
	}
	if v.dirty {
		v.version += "+dirty"
	}
	return v, nil
}

// Build builds the image for every platform and writes the OCI image layout to o.Out,
// replacing what was there (only an OCI layout is ever replaced: any other non-empty
// directory is refused and left as it was). It returns what it wrote.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Out == "" {
		return nil, errors.New("no output directory for the OCI image layout")
	}
	o.ModuleDir = cmpOr(o.ModuleDir, ".")
	o.CACertificates = cmpOr(o.CACertificates, CABundlePath)
	o.Go = cmpOr(o.Go, "go")
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, p := range o.Platforms {
		if _, err := ParsePlatform(p.String()); err != nil {
			return nil, err
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("platform %s is listed twice", p)
		}
		seen[p.String()] = true
	}
	if err := checkReplaceable(o.Out); err != nil {
		return nil, err
	}
	modPath, err := git(ctx, o.ModuleDir, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("module directory %s: %w", o.ModuleDir, err)
	}
	gomod, err := exec.CommandContext(ctx, o.Go, "list", "-C", o.ModuleDir, "-m", "-f", "{{.Path}}").Output()
	if err != nil {
		return nil, fmt.Errorf("reading the main module in %s (go list -m): %w", modPath, err)
	}
	o.Source = cmpOr(o.Source, "https://"+strings.TrimSpace(string(gomod)))
	ca, ncerts, err := readCABundle(o.CACertificates)
	if err != nil {
		return nil, err
	}
	caPkg := debianCA(ctx, o.CACertificates, ca)
	vcs, err := readVCS(ctx, o.ModuleDir)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "cairn-mkimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	// A clean tree is built from a clone of its commit: the image is the commit's, and the
	// clone has a .git directory, so the go command stamps the version, revision and time
	// into the binary (`cairnd version` prints them) even when the tree is a git worktree,
	// whose .git file cmd/go does not take for a repository. A dirty tree is built in place.
	srcDir := o.ModuleDir
	if !vcs.dirty {
		if srcDir, err = cloneAt(ctx, o.ModuleDir, vcs.revision, filepath.Join(work, "src")); err != nil {
			return nil, err
		}
	} else {
		o.Log.Warn("the work tree has uncommitted changes: the image is built from it, labelled +dirty, and is not reproducible from the commit")
	}

	type built struct {
		p       Platform
		bin     []byte
		info    *buildinfo.BuildInfo
		binSHA  string
		ldflags string
	}
	var bins []built
	for _, p := range o.Platforms {
		binPath := filepath.Join(work, "cairnd-"+p.OS+"-"+p.Arch)
		ldflags := "-s -w"
		args := []string{"build", "-C", srcDir, "-trimpath", "-buildvcs=true", "-ldflags=" + ldflags, "-o", binPath, "./cmd/cairnd"}
		o.Log.Info("building cairnd", "platform", p.String(), "commit", vcs.revision, "dirty", vcs.dirty)
		cmd := exec.CommandContext(ctx, o.Go, args...)
		// Static: no libc in the image. PKCS#11 needs cgo (dlopen of the HSM's module), so
		// these binaries refuse pkcs11: key URIs (DESIGN.md, "The container image").
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go %s (GOOS=%s GOARCH=%s CGO_ENABLED=0): %w\n%s", strings.Join(args, " "), p.OS, p.Arch, err, out)
		}
		bin, err := os.ReadFile(binPath)
		if err != nil {
			return nil, err
		}
		info, err := buildinfo.ReadFile(binPath)
		if err != nil {
			return nil, fmt.Errorf("reading the build information of %s: %w", binPath, err)
		}
		if err := checkBuildInfo(info, p, vcs); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(bin)
		bins = append(bins, built{p: p, bin: bin, info: info, binSHA: hex.EncodeToString(sum[:]), ldflags: ldflags})
	}
	// The version label is what `cairnd version` prints: the module version the go command
	// stamped (a tag, or a pseudo-version it derives from the last tag). Without VCS
	// stamping (a dirty git worktree) cairnd says (devel); the label then carries the
	// version made from git here.
	if setting(bins[0].info, "vcs.revision") != "" {
		vcs.version = bins[0].info.Main.Version
		for _, b := range bins {
			if b.info.Main.Version != vcs.version {
				return nil, fmt.Errorf("the binaries have two versions, %s (%s) and %s (%s)", vcs.version, bins[0].p, b.info.Main.Version, b.p)
			}
		}
	} else {
		o.Log.Warn("the go command recorded no VCS information (a dirty git worktree): cairnd version will print (devel); the labels come from git", "version", vcs.version)
	}

	res := &Result{Tag: strings.ReplaceAll(vcs.version, "+", "-"), Version: vcs.version, Revision: vcs.revision, Dirty: vcs.dirty, Created: vcs.time, Source: o.Source}
	labels := map[string]string{
		LabelSource: o.Source, LabelRevision: vcs.revision, LabelVersion: vcs.version,
		LabelCreated: vcs.time.Format(time.RFC3339), LabelTitle: "cairnd",
		"org.opencontainers.image.description": "Cairn: a TUF repository server for developer-signed releases",
	}
	baseTar, err := layerTar(baseEntries(ca), vcs.time)
	if err != nil {
		return nil, err
	}
	base, err := tarLayer(baseTar)
	if err != nil {
		return nil, err
	}
	caVersion := cmpOr(caPkg.version, "unknown version")
	baseHistory := v1.History{Created: v1.Time{Time: vcs.time}, CreatedBy: fmt.Sprintf("cairn mkimage: static base: /etc/passwd and /etc/group (nonroot 65532), /etc/nsswitch.conf, %d CA certificates (ca-certificates %s), /home/nonroot, /tmp", ncerts, caVersion)}

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	type sbomBlob struct {
		manifest, doc []byte
		desc          v1.Descriptor
	}
	var sboms []sbomBlob
	for _, b := range bins {
		p, bin, info, binSHA, ldflags := b.p, b.bin, b.info, b.binSHA, b.ldflags
		binTar, err := layerTar(binaryEntries(bin), vcs.time)
		if err != nil {
			return nil, err
		}
		binLayer, err := tarLayer(binTar)
		if err != nil {
			return nil, err
		}
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err = mutate.Append(img,
			mutate.Addendum{Layer: base, History: baseHistory},
			mutate.Addendum{Layer: binLayer, History: v1.History{Created: v1.Time{Time: vcs.time},
				CreatedBy: fmt.Sprintf("go build -trimpath -ldflags=%q ./cmd/cairnd (CGO_ENABLED=0 GOOS=%s GOARCH=%s, %s) -> %s", ldflags, p.OS, p.Arch, info.GoVersion, BinaryPath)}})
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", p, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", p, err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Arch, p.Variant
		cf.Created = v1.Time{Time: vcs.time}
		cf.Author = ""
		cf.Config = v1.Config{
			User:       User,
			Entrypoint: []string{BinaryPath},
			Cmd:        []string{"serve"},
			Env: []string{
				"PATH=/usr/local/bin",
				// cairnd listens on all interfaces in a container; it then also needs
				// CAIRN_EXTERNAL_URL (README "Running in production").
				"CAIRN_LISTEN=0.0.0.0:8080",
			},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			WorkingDir:   "/home/nonroot",
			Labels:       labels,
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, fmt.Errorf("image %s: %w", p, err)
		}
		img = mutate.Annotations(img, map[string]string{LabelCreated: labels[LabelCreated], LabelRevision: vcs.revision, LabelSource: o.Source, LabelVersion: vcs.version}).(v1.Image)
		desc, err := descriptorOf(img)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", p, err)
		}
		// go-containerregistry would give the index entry an artifactType (the config's
		// media type); this is an image, not an artifact, so the entry is set here.
		entry := desc
		entry.Platform = &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: describedImage{img, entry}})

		doc, err := buildSBOM(sbomInput{info: info, binSHA256: binSHA, version: vcs.version, revision: vcs.revision, platform: p, created: vcs.time, source: o.Source, ca: caPkg})
		if err != nil {
			return nil, err
		}
		man, sdesc, err := sbomManifest(doc, desc, p, vcs)
		if err != nil {
			return nil, err
		}
		sboms = append(sboms, sbomBlob{manifest: man, doc: doc, desc: sdesc})
		desc.Platform = &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
		res.Images = append(res.Images, PlatformImage{Platform: p, Manifest: desc, SBOM: sdesc, Binary: binSHA})
	}
	idx = mutate.Annotations(idx, map[string]string{LabelCreated: labels[LabelCreated], LabelRevision: vcs.revision, LabelSource: o.Source, LabelVersion: vcs.version}).(v1.ImageIndex)
	idesc, err := descriptorOf(idx)
	if err != nil {
		return nil, err
	}
	res.Index = idesc

	// Written next to the destination and renamed over it, so that a failed build leaves
	// the previous layout whole.
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(o.Out)), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(o.Out)), "."+filepath.Base(o.Out)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{refName: res.Tag})); err != nil {
		return nil, fmt.Errorf("writing the OCI layout: %w", err)
	}
	for _, s := range sboms {
		for _, blob := range [][]byte{[]byte("{}"), s.doc, s.manifest} {
			h, _, err := v1.SHA256(bytes.NewReader(blob))
			if err != nil {
				return nil, err
			}
			if err := lp.WriteBlob(h, io.NopCloser(bytes.NewReader(blob))); err != nil {
				return nil, fmt.Errorf("writing the SBOM to the OCI layout: %w", err)
			}
		}
		if err := lp.AppendDescriptor(s.desc); err != nil {
			return nil, fmt.Errorf("writing the SBOM to the OCI layout: %w", err)
		}
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, o.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// cloneAt makes a clone of moduleDir's repository at dst with rev checked out (objects
// shared with the source, so it is quick) and returns the module's directory in it.
func cloneAt(ctx context.Context, moduleDir, rev, dst string) (string, error) {
	top, err := git(ctx, moduleDir, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(moduleDir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil {
		return "", err
	}
	if _, err := git(ctx, top, "clone", "--quiet", "--shared", "--no-checkout", top, dst); err != nil {
		return "", fmt.Errorf("cloning the commit to build it: %w", err)
	}
	if _, err := git(ctx, dst, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", rev); err != nil {
		return "", fmt.Errorf("cloning the commit to build it: %w", err)
	}
	return filepath.Join(dst, rel), nil
}

// checkReplaceable refuses to replace anything but a missing or empty directory or an
// OCI image layout.
func checkReplaceable(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || err == nil && len(ents) == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("output %s is a non-empty directory that is not an OCI image layout (no oci-layout file): refusing to replace it; remove it or choose another directory", dir)
	}
	return nil
}

// checkBuildInfo makes sure the binary is what the image claims: static, for the
// platform, from the commit the labels name. The go command does not stamp VCS
// information in a git worktree (its .git is a file, which cmd/go does not take for a
// repository; Go 1.26), which Build meets only for a dirty worktree, so vcs.* are
// checked only when present.
func checkBuildInfo(info *buildinfo.BuildInfo, p Platform, vcs vcsInfo) error {
	want := map[string]string{"CGO_ENABLED": "0", "GOOS": p.OS, "GOARCH": p.Arch}
	if setting(info, "vcs") != "" {
		want["vcs.revision"], want["vcs.modified"] = vcs.revision, strconv.FormatBool(vcs.dirty)
	}
	for k, want := range want {
		if got := setting(info, k); got != want {
			return fmt.Errorf("the %s binary's build information says %s=%q, want %q (did the tree change during the build?)", p, k, got, want)
		}
	}
	return nil
}

func tarLayer(b []byte) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return l, nil
}

// describedImage is an image with the descriptor its index entry gets.
type describedImage struct {
	v1.Image
	desc v1.Descriptor
}

func (d describedImage) Descriptor() (*v1.Descriptor, error) { return &d.desc, nil }

type describable interface {
	MediaType() (types.MediaType, error)
	Digest() (v1.Hash, error)
	Size() (int64, error)
}

func descriptorOf(x describable) (v1.Descriptor, error) {
	mt, err := x.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := x.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	n, err := x.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}, nil
}

// sbomManifest is the OCI 1.1 artifact manifest that carries one platform's SBOM: its
// artifactType is application/spdx+json, its config the empty JSON object, its subject
// that platform's image manifest, so the registry's referrers API lists it for the image.
func sbomManifest(doc []byte, subject v1.Descriptor, p Platform, vcs vcsInfo) ([]byte, v1.Descriptor, error) {
	dh, _, err := v1.SHA256(bytes.NewReader(doc))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	eh, _, err := v1.SHA256(bytes.NewReader([]byte("{}")))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: SPDXMediaType,
		Config: v1.Descriptor{MediaType: emptyJSONMediaType, Size: 2, Digest: eh},
		Layers: []v1.Descriptor{{MediaType: SPDXMediaType, Size: int64(len(doc)), Digest: dh,
			Annotations: map[string]string{LabelTitle: fmt.Sprintf("cairnd-%s-%s-%s.spdx.json", strings.ReplaceAll(vcs.version, "+", "-"), p.OS, p.Arch)}}},
		Subject:     &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations: map[string]string{LabelCreated: vcs.time.Format(time.RFC3339)},
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	h, n, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return b, v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: SPDXMediaType, Digest: h, Size: n,
		Annotations: map[string]string{"vnd.cairn.sbom.platform": p.String()}}, nil
}

// debianCA finds the Debian package that owns the CA bundle, for the SBOM: dpkg-query
// for the version when the bundle is Debian's own file, /etc/os-release for the distro.
// Unknown (another bundle, not Debian) leaves the fields empty.
func debianCA(ctx context.Context, path string, bundle []byte) caPackage {
	sum := sha256.Sum256(bundle)
	c := caPackage{sha256: hex.EncodeToString(sum[:])}
	if filepath.Clean(path) != CABundlePath {
		return c
	}
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", "ca-certificates").Output()
	if err != nil {
		return c
	}
	c.version = strings.TrimSpace(string(out))
	if osr, err := os.ReadFile("/etc/os-release"); err == nil {
		kv := map[string]string{}
		for _, l := range strings.Split(string(osr), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = strings.Trim(v, `"`)
			}
		}
		if kv["ID"] == "debian" && kv["VERSION_ID"] != "" {
			c.distro = "debian-" + kv["VERSION_ID"]
		}
	}
	return c
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
