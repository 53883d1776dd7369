package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testenv"
	"github.com/cairn-dev/cairn/store"
)

// The OCI clients people use, run for real against a real cairnd on a real PostgreSQL:
// crane, oras and notation (in `make test`), and cosign (`make test-cosign`, or all four
// with `make test-oci-clients`: cosign takes 10-15 minutes to build cold). The make targets
// install them with test/ociclients/install.sh into a cache directory; these tests read it
// from CAIRN_OCI_CLIENTS (and cosign's path from CAIRN_COSIGN) and skip, naming the make
// target, when it is unset. When it is set, a missing client is a failure, not a skip.
//
// Every client talks to cairnd through a recording reverse proxy on loopback (it passes
// bodies through as they are and keeps the Host header, so Bearer challenges point at it): the
// tests check which endpoints the clients used (the referrers API, the token endpoint), and
// a failing test prints the HTTP exchanges.

const ociClientsTarget = "make test (or make test-oci-clients)"

// ociClient is the path of an installed client (crane, oras, notation).
func ociClient(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("CAIRN_OCI_CLIENTS")
	if dir == "" {
		testenv.MissingTool(t, "CAIRN_OCI_CLIENTS is not set: "+ociClientsTarget+" installs crane, oras and notation and runs this test with it")
	}
	return executable(t, filepath.Join(dir, name), "CAIRN_OCI_CLIENTS="+dir+" has no "+name+": test/ociclients/install.sh -d DIR "+name+" installs it")
}

// cosignClient is the path of cosign, from CAIRN_COSIGN.
func cosignClient(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CAIRN_COSIGN")
	if p == "" {
		// make test does not build cosign (10-15 min cold): it is opted into, never missing.
		testenv.OptIn(t, "CAIRN_COSIGN is not set: make test-cosign (or make test-oci-clients) builds cosign (10-15 min cold, cached after) and runs this test with it")
	}
	return executable(t, p, "CAIRN_COSIGN="+p+" is not an executable: test/ociclients/install.sh -d DIR cosign installs it")
}

func executable(t *testing.T, p, msg string) string {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s (%v)", msg, err)
	}
	return p
}

// exchange is one HTTP request through the recording proxy.
type exchange struct {
	Method, Path, Auth string // Auth: the Authorization scheme, or ""
	Status             int
	Challenge          string // WWW-Authenticate
}

func (e exchange) String() string {
	s := fmt.Sprintf("%s %s [%s] -> %d", e.Method, e.Path, cmpOr(e.Auth, "no auth"), e.Status)
	if e.Challenge != "" {
		s += " WWW-Authenticate: " + e.Challenge
	}
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ociRegistry is cairnd as the clients see it: host:port of the recording proxy.
type ociRegistry struct {
	w    *world
	host string

	mu  sync.Mutex
	log []exchange
}

// newOCIRegistry boots cairnd (newWorld: project demo with releases 1.0.0 and 2.0.0, not
// yet published) with anonymous pull as given, behind a recording proxy.
func newOCIRegistry(t *testing.T, anonymousPull bool) *ociRegistry {
	t.Helper()
	// The proxy's address is the URL clients use: cairnd must be told (--external-url), as
	// it never takes the token realm from a request's Host.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorldWith(t, func(c *daemon.Config) {
		c.OCIAnonymousPull = anonymousPull
		c.ExternalURL = "http://" + ln.Addr().String()
	})
	target, err := url.Parse(w.r.URL)
	if err != nil {
		t.Fatal(err)
	}
	reg := &ociRegistry{w: w}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		scheme, _, _ := strings.Cut(resp.Request.Header.Get("Authorization"), " ")
		reg.mu.Lock()
		reg.log = append(reg.log, exchange{Method: resp.Request.Method, Path: resp.Request.URL.RequestURI(), Auth: scheme,
			Status: resp.StatusCode, Challenge: resp.Header.Get("WWW-Authenticate")})
		reg.mu.Unlock()
		return nil
	}
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		// A client that gives up on a request (crane pings https and http at once) is not
		// an error of the registry: record it and answer 502.
		reg.mu.Lock()
		reg.log = append(reg.log, exchange{Method: r.Method, Path: r.URL.RequestURI() + " (proxy: " + err.Error() + ")", Status: http.StatusBadGateway})
		reg.mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	reg.host = ln.Addr().String()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("HTTP exchanges through the proxy:\n%s", strings.Join(reg.exchanges(""), "\n"))
		}
	})
	return reg
}

// exchanges lists the recorded requests whose path contains sub, and forgets all of them.
func (reg *ociRegistry) exchanges(sub string) []string {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	var out []string
	for _, e := range reg.log {
		if strings.Contains(e.Path, sub) {
			out = append(out, e.String())
		}
	}
	reg.log = nil
	return out
}

// ref is host/repo:tag or host/repo@digest.
func (reg *ociRegistry) ref(s string) string { return reg.host + "/" + s }

// raw sends one request straight to the registry (through the proxy).
func (reg *ociRegistry) raw(t *testing.T, method, path, token string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+reg.host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.SetBasicAuth("anyone", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// ociUser is one person on one machine: their own home, docker config (crane, oras,
// cosign and notation keep registry credentials there) and notation config.
type ociUser struct {
	home string
	env  []string
}

func newOCIUser(t *testing.T) *ociUser {
	t.Helper()
	home := t.TempDir()
	u := &ociUser{home: home}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "DOCKER_CONFIG", strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "NOTATION_"),
			strings.HasPrefix(k, "COSIGN_"), strings.HasPrefix(k, "SIGSTORE_"), strings.HasPrefix(k, "TUF_"),
			k == "HTTP_PROXY", k == "HTTPS_PROXY", k == "http_proxy", k == "https_proxy":
			continue
		}
		u.env = append(u.env, kv)
	}
	u.env = append(u.env, "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"NOTATION_CONFIG="+filepath.Join(home, ".config", "notation"), "NOTATION_CACHE="+filepath.Join(home, ".cache", "notation"),
		"NO_PROXY=*")
	return u
}

// cmd describes one client run.
type cmd struct {
	dir   string   // working directory (default: the user's home)
	stdin string   // standard input
	env   []string // more environment
}

// run runs a client and returns its output and exit code. The context only guards
// against a hung client; nothing asserts on durations.
func (u *ociUser) run(t *testing.T, c cmd, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	x := exec.CommandContext(ctx, bin, args...)
	x.Dir = cmpOr(c.dir, u.home)
	x.Env = append(slices.Clone(u.env), c.env...)
	x.Stdin = strings.NewReader(c.stdin)
	var out, errb bytes.Buffer
	x.Stdout, x.Stderr = &out, &errb
	err := x.Run()
	code = x.ProcessState.ExitCode()
	if err != nil && code == 0 {
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	t.Logf("$ %s %s  # exit %d", filepath.Base(bin), strings.Join(args, " "), code)
	return out.String(), errb.String(), code
}

// ok runs a client that must succeed and returns its standard output.
func (u *ociUser) ok(t *testing.T, c cmd, bin string, args ...string) string {
	t.Helper()
	out, errs, code := u.run(t, c, bin, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), code, out, errs)
	}
	return out
}

// fails runs a client that must fail and returns its combined output.
func (u *ociUser) fails(t *testing.T, c cmd, bin string, args ...string) string {
	t.Helper()
	out, errs, code := u.run(t, c, bin, args...)
	if code == 0 {
		t.Fatalf("%s %s succeeded, want a failure\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), out, errs)
	}
	return out + errs
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layerTar is an uncompressed layer with the given files.
func layerTar(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// untar reads the regular files of a tar stream.
func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			c, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimPrefix(h.Name, "./")] = c
		}
	}
}

// pushImage builds a one-layer image on an empty base with crane append from a local layer
// tarball, and pushes it: with Docker media types through a local image tarball and crane
// push, with OCI media types straight from crane append. It returns the digest crane
// printed.
func pushImage(t *testing.T, u *ociUser, crane, ref string, oci bool, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	layer := writeFile(t, dir, "layer.tar", layerTar(t, files))
	var out string
	if oci {
		out = u.ok(t, cmd{}, crane, "append", "--insecure", "--oci-empty-base", "-f", layer, "-t", ref)
	} else {
		img := filepath.Join(dir, "image.tar")
		u.ok(t, cmd{}, crane, "append", "--insecure", "-f", layer, "-t", ref, "-o", img)
		out = u.ok(t, cmd{}, crane, "push", "--insecure", img, ref)
	}
	out = strings.TrimSpace(out)
	repo, dig, ok := strings.Cut(out, "@")
	if !ok || !strings.HasPrefix(dig, "sha256:") || repo+":"+tagOf(ref) != ref {
		t.Fatalf("crane printed %q, want %s@sha256:…", out, strings.TrimSuffix(ref, ":"+tagOf(ref)))
	}
	return dig
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func tagOf(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }

// referrers reads the referrers API directly: artifactType → digests.
func referrers(t *testing.T, reg *ociRegistry, repo, dig, token string) map[string][]string {
	t.Helper()
	st, h, body := reg.raw(t, "GET", "/v2/"+repo+"/referrers/"+dig, token, nil)
	if st != 200 || h.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("referrers of %s@%s: %d %s %s", repo, dig, st, h.Get("Content-Type"), body)
	}
	var idx struct {
		Manifests []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers index: %v: %s", err, body)
	}
	out := map[string][]string{}
	for _, m := range idx.Manifests {
		out[m.ArtifactType] = append(out[m.ArtifactType], m.Digest)
	}
	return out
}

// TestOCIClientsCrane: crane logs in with a Cairn token, builds an image from a local
// tarball and pushes it (Docker and OCI media types), pulls it back (manifest, layer
// blob, exported file system, OCI layout), mutates, copies across repositories, tags,
// lists tags and deletes by digest.
func TestOCIClientsCrane(t *testing.T) {
	crane := ociClient(t, "crane")
	reg := newOCIRegistry(t, true)
	u := newOCIUser(t)
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, crane, "auth", "login", reg.host, "-u", "cairn", "--password-stdin")
	if cfg := readFile(t, filepath.Join(u.home, ".docker", "config.json")); !bytes.Contains(cfg, []byte(reg.host)) {
		t.Fatalf("crane auth login wrote no credentials for %s: %s", reg.host, cfg)
	}

	hello := []byte("hello from a crane-built image\n")
	v1 := pushImage(t, u, crane, reg.ref("demo/app:v1"), false, map[string][]byte{"hello.txt": hello})
	ociDig := pushImage(t, u, crane, reg.ref("demo/oci:v1"), true, map[string][]byte{"etc/motd": []byte("oci media types\n")})

	// The digest resolves, the manifest hashes to it, and the media types are what was pushed.
	for _, c := range []struct{ ref, dig, mt string }{
		{"demo/app:v1", v1, "application/vnd.docker.distribution.manifest.v2+json"},
		{"demo/oci:v1", ociDig, "application/vnd.oci.image.manifest.v1+json"},
	} {
		if got := strings.TrimSpace(u.ok(t, cmd{}, crane, "digest", "--insecure", reg.ref(c.ref))); got != c.dig {
			t.Fatalf("crane digest %s = %s, crane push printed %s", c.ref, got, c.dig)
		}
		raw := []byte(u.ok(t, cmd{}, crane, "manifest", "--insecure", reg.ref(c.ref)))
		var m struct {
			MediaType string `json:"mediaType"`
			Layers    []struct {
				Digest string `json:"digest"`
				Size   int64  `json:"size"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || digestOf(raw) != c.dig || m.MediaType != c.mt || len(m.Layers) != 1 {
			t.Fatalf("crane manifest %s: %v, digest %s (want %s), media type %s (want %s): %s", c.ref, err, digestOf(raw), c.dig, m.MediaType, c.mt, raw)
		}
		blob := []byte(u.ok(t, cmd{}, crane, "blob", "--insecure", reg.ref(strings.Split(c.ref, ":")[0]+"@"+m.Layers[0].Digest)))
		if digestOf(blob) != m.Layers[0].Digest || int64(len(blob)) != m.Layers[0].Size {
			t.Fatalf("crane blob %s: %d bytes hashing to %s, want %d bytes, %s", m.Layers[0].Digest, len(blob), digestOf(blob), m.Layers[0].Size, m.Layers[0].Digest)
		}
	}

	// The image's file system comes back byte for byte.
	fs := untar(t, []byte(u.ok(t, cmd{}, crane, "export", "--insecure", reg.ref("demo/app:v1"), "-")))
	if !bytes.Equal(fs["hello.txt"], hello) {
		t.Fatalf("crane export: hello.txt = %q, want %q (files: %v)", fs["hello.txt"], hello, fs)
	}
	// crane pull into an OCI layout: the index names the pushed digest, and every blob
	// hashes to its name.
	layout := filepath.Join(t.TempDir(), "layout")
	u.ok(t, cmd{}, crane, "pull", "--insecure", "--format", "oci", reg.ref("demo/app:v1"), layout)
	if idx := readFile(t, filepath.Join(layout, "index.json")); !bytes.Contains(idx, []byte(v1)) {
		t.Fatalf("crane pull: the layout's index does not name %s: %s", v1, idx)
	}
	blobs, _ := filepath.Glob(filepath.Join(layout, "blobs", "sha256", "*"))
	if len(blobs) != 3 { // manifest, config, layer
		t.Fatalf("crane pull: %d blobs in the layout, want 3", len(blobs))
	}
	for _, b := range blobs {
		if digestOf(readFile(t, b)) != "sha256:"+filepath.Base(b) {
			t.Fatalf("crane pull: blob %s does not hash to its name", b)
		}
	}

	// mutate pushes a new image; copy mounts across repositories; tag adds a tag.
	u.ok(t, cmd{}, crane, "mutate", "--insecure", reg.ref("demo/app:v1"), "--label", "org.example.built-by=cairn-e2e", "-t", reg.ref("demo/app:v2"))
	if cfg := u.ok(t, cmd{}, crane, "config", "--insecure", reg.ref("demo/app:v2")); !strings.Contains(cfg, `"org.example.built-by":"cairn-e2e"`) {
		t.Fatalf("crane mutate: the label is not in the config: %s", cfg)
	}
	v2 := strings.TrimSpace(u.ok(t, cmd{}, crane, "digest", "--insecure", reg.ref("demo/app:v2")))
	if v2 == v1 {
		t.Fatal("crane mutate pushed the same digest")
	}
	u.ok(t, cmd{}, crane, "copy", "--insecure", reg.ref("demo/app:v1"), reg.ref("demo/mirror/app:v1"))
	if got := strings.TrimSpace(u.ok(t, cmd{}, crane, "digest", "--insecure", reg.ref("demo/mirror/app:v1"))); got != v1 {
		t.Fatalf("crane copy: %s in the mirror, want %s", got, v1)
	}
	u.ok(t, cmd{}, crane, "tag", "--insecure", reg.ref("demo/app:v1"), "stable")
	ls := func(repo string) []string {
		return strings.Fields(u.ok(t, cmd{}, crane, "ls", "--insecure", reg.ref(repo)))
	}
	if got := ls("demo/app"); !slices.Equal(got, []string{"stable", "v1", "v2"}) {
		t.Fatalf("crane ls demo/app = %v, want [stable v1 v2]", got)
	}

	// Delete v2 by digest: its tag goes, and the manifest is gone.
	u.ok(t, cmd{}, crane, "delete", "--insecure", reg.ref("demo/app@"+v2))
	if got := ls("demo/app"); !slices.Equal(got, []string{"stable", "v1"}) {
		t.Fatalf("crane ls demo/app after deleting v2 = %v, want [stable v1]", got)
	}
	if out := u.fails(t, cmd{}, crane, "manifest", "--insecure", reg.ref("demo/app@"+v2)); !strings.Contains(out, "MANIFEST_UNKNOWN") {
		t.Fatalf("crane manifest of a deleted digest: %s", out)
	}
	if got := strings.TrimSpace(u.ok(t, cmd{}, crane, "digest", "--insecure", reg.ref("demo/app:stable"))); got != v1 {
		t.Fatalf("demo/app:stable = %s after deleting v2, want %s", got, v1)
	}

	// A multi-platform index of the two images.
	u.ok(t, cmd{}, crane, "index", "append", "--insecure", "-m", reg.ref("demo/app@"+v1), "-m", reg.ref("demo/oci@"+ociDig), "-t", reg.ref("demo/app:multi"))
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if raw := u.ok(t, cmd{}, crane, "manifest", "--insecure", reg.ref("demo/app:multi")); json.Unmarshal([]byte(raw), &idx) != nil ||
		idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != 2 || idx.Manifests[0].Digest != v1 || idx.Manifests[1].Digest != ociDig {
		t.Fatalf("crane index append: %s", raw)
	}
}

// TestOCIClientsAnonymousAndUnauthorized: with anonymous pull on, crane and oras pull with
// no credentials; pushing with none (or a wrong or revoked token, or a token of another
// project) is refused with 401 or 403, the 401 carrying the Bearer challenge; crane and
// oras authenticate through it.
func TestOCIClientsAnonymousAndUnauthorized(t *testing.T) {
	crane, oras := ociClient(t, "crane"), ociClient(t, "oras")
	reg := newOCIRegistry(t, true)
	admin := newOCIUser(t)
	admin.ok(t, cmd{stdin: reg.w.r.AdminToken}, crane, "auth", "login", reg.host, "-u", "cairn", "--password-stdin")
	hello := []byte("anonymous readers welcome\n")
	dig := pushImage(t, admin, crane, reg.ref("demo/app:v1"), false, map[string][]byte{"hello.txt": hello})

	anon := newOCIUser(t)
	reg.exchanges("")
	if got := strings.TrimSpace(anon.ok(t, cmd{}, crane, "digest", "--insecure", reg.ref("demo/app:v1"))); got != dig {
		t.Fatalf("anonymous crane digest = %s, want %s", got, dig)
	}
	if fs := untar(t, []byte(anon.ok(t, cmd{}, crane, "export", "--insecure", reg.ref("demo/app:v1"), "-"))); !bytes.Equal(fs["hello.txt"], hello) {
		t.Fatalf("anonymous crane export: %v", fs)
	}
	// No Cairn credentials went out: the ping's challenge sends crane to the token endpoint
	// without credentials, for an anonymous pull token.
	anonLog := reg.exchanges("/v2/")
	for _, e := range anonLog {
		if strings.Contains(e, "[Basic]") || (strings.Contains(e, "/v2/demo/") && !strings.Contains(e, "-> 200")) {
			t.Fatalf("an anonymous pull sent credentials or was refused: %s\n%s", e, strings.Join(anonLog, "\n"))
		}
	}

	// Pushing without credentials: refused, nothing stored.
	out := anon.fails(t, cmd{}, crane, "copy", "--insecure", reg.ref("demo/app:v1"), reg.ref("demo/anon:v1"))
	if !strings.Contains(out, "UNAUTHORIZED") {
		t.Fatalf("anonymous crane push: %s", out)
	}
	st, h, body := reg.raw(t, "POST", "/v2/demo/anon/blobs/uploads/", "", nil)
	want := fmt.Sprintf(`Bearer realm="http://%s/v2/token",service="cairn",scope="repository:demo/anon:pull,push"`, reg.host)
	if st != 401 || h.Get("WWW-Authenticate") != want || !bytes.Contains(body, []byte(`"UNAUTHORIZED"`)) {
		t.Fatalf("POST an upload without credentials: %d, WWW-Authenticate %q (want %q): %s", st, h.Get("WWW-Authenticate"), want, body)
	}
	mf := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	if st, h, _ := reg.raw(t, "PUT", "/v2/demo/anon/manifests/v1", "", mf); st != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Fatalf("PUT a manifest without credentials: %d %q", st, h.Get("WWW-Authenticate"))
	}
	if st, h, _ := reg.raw(t, "DELETE", "/v2/demo/app/manifests/"+dig, "", nil); st != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `scope="repository:demo/app:delete"`) {
		t.Fatalf("DELETE without credentials: %d %q", st, h.Get("WWW-Authenticate"))
	}

	// oras: pushing without credentials fails; a wrong token and a revoked one fail the
	// token endpoint; a token of another project is refused with 403 DENIED.
	dir := t.TempDir()
	writeFile(t, dir, "note.txt", []byte("a note"))
	if out := anon.fails(t, cmd{dir: dir}, oras, "push", "--plain-http", reg.ref("demo/notes:v1"), "note.txt"); !containsFold(out, "unauthorized: pushing needs a Cairn token") {
		t.Fatalf("anonymous oras push: %s", out)
	}
	ctx := context.Background()
	otherTok, _, err := reg.w.r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "other", Projects: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	revokedTok, rec, err := reg.w.r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "revoked", Projects: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.w.r.DB.RevokeToken(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	demoTok, _, err := reg.w.r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "demo-ci", Projects: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token, want string
	}{
		{"a wrong token", "cairn_nosuchtoken_0123456789abcdef", "unauthorized: the credentials are not valid"},
		{"a revoked token", revokedTok, "unauthorized: the credentials are not valid"},
		{"a token of another project", otherTok, `denied: token "other" may not push to or delete from demo/notes`},
	} {
		pu := newOCIUser(t)
		out := pu.fails(t, cmd{dir: dir, stdin: c.token}, oras, "push", "--plain-http", "-u", "ci", "--password-stdin", reg.ref("demo/notes:v1"), "note.txt")
		if !containsFold(out, c.want) {
			t.Errorf("oras push with %s: want %s in\n%s", c.name, c.want, out)
		}
	}
	if st, _, _ := reg.raw(t, "GET", "/v2/demo/notes/tags/list", "", nil); st != 404 {
		t.Fatalf("refused pushes created demo/notes: tags/list answered %d", st)
	}

	// oras login checks the token (GET /v2/ challenges, the token endpoint refuses it).
	if out := newOCIUser(t).fails(t, cmd{stdin: "cairn_nosuchtoken_0123456789abcdef"}, oras, "login", "--plain-http", "-u", "ci", "--password-stdin", reg.host); !containsFold(out, "unauthorized") {
		t.Fatalf("oras login with a wrong token: %s", out)
	}

	// The project's own token pushes through the Bearer challenge flow: a 401 on the
	// upload, then the token endpoint with Basic credentials, then Bearer requests.
	pu := newOCIUser(t)
	pu.ok(t, cmd{stdin: demoTok}, oras, "login", "--plain-http", "-u", "ci", "--password-stdin", reg.host)
	reg.exchanges("")
	pu.ok(t, cmd{dir: dir}, oras, "push", "--plain-http", reg.ref("demo/notes:v1"), "note.txt")
	flow := strings.Join(reg.exchanges(""), "\n")
	for _, want := range []string{"POST /v2/demo/notes/blobs/uploads/ [no auth] -> 401 WWW-Authenticate: Bearer realm=",
		"GET /v2/token?scope=repository%3Ademo%2Fnotes%3Apull%2Cpush&service=cairn [Basic] -> 200",
		"PUT /v2/demo/notes/manifests/v1 [Bearer] -> 201"} {
		if !strings.Contains(flow, want) {
			t.Fatalf("oras push: no %q in the exchanges:\n%s", want, flow)
		}
	}
	if out := anon.ok(t, cmd{dir: t.TempDir()}, oras, "pull", "--plain-http", "-o", ".", reg.ref("demo/notes:v1")); !strings.Contains(out, "Pulled") {
		t.Fatalf("anonymous oras pull: %s", out)
	}
}

// TestOCIClientsNoAnonymousPull: with anonymous pull off, the registry challenges every
// request; crane and oras pull with a Cairn token through the challenge and are refused
// without one.
func TestOCIClientsNoAnonymousPull(t *testing.T) {
	crane, oras := ociClient(t, "crane"), ociClient(t, "oras")
	reg := newOCIRegistry(t, false)
	if st, h, _ := reg.raw(t, "GET", "/v2/", "", nil); st != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="http://`+reg.host+`/v2/token"`) {
		t.Fatalf("GET /v2/ without credentials: %d %q", st, h.Get("WWW-Authenticate"))
	}
	u := newOCIUser(t)
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, crane, "auth", "login", reg.host, "-u", "cairn", "--password-stdin")
	dig := pushImage(t, u, crane, reg.ref("demo/private:v1"), true, map[string][]byte{"secret.txt": []byte("members only")})
	if got := strings.TrimSpace(u.ok(t, cmd{}, crane, "digest", "--insecure", reg.ref("demo/private:v1"))); got != dig {
		t.Fatalf("crane digest with a token: %s, want %s", got, dig)
	}
	flow := strings.Join(reg.exchanges(""), "\n")
	if !strings.Contains(flow, "GET /v2/token?") || !strings.Contains(flow, "[Bearer] -> 200") {
		t.Fatalf("crane did not go through the Bearer challenge flow:\n%s", flow)
	}
	anon := newOCIUser(t)
	if out := anon.fails(t, cmd{}, crane, "digest", "--insecure", reg.ref("demo/private:v1")); !containsFold(out, "unauthorized") {
		t.Fatalf("anonymous crane digest: %s", out)
	}
	if out := anon.fails(t, cmd{dir: t.TempDir()}, oras, "pull", "--plain-http", reg.ref("demo/private:v1")); !containsFold(out, "unauthorized: this registry needs a Cairn token") {
		t.Fatalf("anonymous oras pull: %s", out)
	}
	ou := newOCIUser(t)
	ou.ok(t, cmd{stdin: reg.w.r.AdminToken}, oras, "login", "--plain-http", "-u", "cairn", "--password-stdin", reg.host)
	if out := ou.ok(t, cmd{}, oras, "resolve", "--plain-http", reg.ref("demo/private:v1")); strings.TrimSpace(out) != dig {
		t.Fatalf("oras resolve with a token: %s, want %s", out, dig)
	}
}

// TestOCIClientsOras: oras pushes files with an artifact type and pulls them back
// byte-identical; attaches an SBOM that oras discover finds through the referrers API (no
// fallback tag); and pulls a release published through Cairn's API as <project>:<version>.
func TestOCIClientsOras(t *testing.T) {
	oras := ociClient(t, "oras")
	reg := newOCIRegistry(t, true)
	u := newOCIUser(t)
	out := u.ok(t, cmd{stdin: reg.w.r.AdminToken}, oras, "login", "--plain-http", "-u", "cairn", "--password-stdin", reg.host)
	if !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("oras login: %s", out)
	}

	src := t.TempDir()
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	files := map[string][]byte{"readme.txt": []byte("files pushed with oras\n"), "data.bin": big}
	for n, b := range files {
		writeFile(t, src, n, b)
	}
	const artifactType = "application/vnd.cairn.e2e.bundle.v1"
	var pushed struct {
		Digest       string `json:"digest"`
		MediaType    string `json:"mediaType"`
		ArtifactType string `json:"artifactType"`
	}
	out = u.ok(t, cmd{dir: src}, oras, "push", "--plain-http", "--artifact-type", artifactType, "--format", "json",
		reg.ref("demo/files:v1"), "readme.txt:text/plain", "data.bin")
	if err := json.Unmarshal([]byte(out), &pushed); err != nil || !strings.HasPrefix(pushed.Digest, "sha256:") || pushed.ArtifactType != artifactType {
		t.Fatalf("oras push: %v: %s", err, out)
	}
	raw := []byte(u.ok(t, cmd{}, oras, "manifest", "fetch", "--plain-http", reg.ref("demo/files:v1")))
	var m struct {
		ArtifactType string `json:"artifactType"`
		Layers       []struct {
			MediaType   string            `json:"mediaType"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || digestOf(raw) != pushed.Digest || m.ArtifactType != artifactType || len(m.Layers) != 2 {
		t.Fatalf("oras manifest fetch: digest %s (pushed %s): %s", digestOf(raw), pushed.Digest, raw)
	}
	dst := t.TempDir()
	u.ok(t, cmd{dir: dst}, oras, "pull", "--plain-http", "-o", dst, reg.ref("demo/files:v1"))
	for n, b := range files {
		if got := readFile(t, filepath.Join(dst, n)); !bytes.Equal(got, b) {
			t.Fatalf("oras pull: %s differs (%d bytes, want %d)", n, len(got), len(b))
		}
	}

	// An SBOM attached to the artifact: oras discover lists it, through the referrers API.
	sbom := []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"demo-files","dataLicense":"CC0-1.0","packages":[]}`)
	writeFile(t, src, "sbom.spdx.json", sbom)
	var attached struct {
		Digest string `json:"digest"`
	}
	reg.exchanges("")
	out = u.ok(t, cmd{dir: src}, oras, "attach", "--plain-http", "--artifact-type", "application/spdx+json", "--format", "json",
		reg.ref("demo/files:v1"), "sbom.spdx.json:application/spdx+json")
	if err := json.Unmarshal([]byte(out), &attached); err != nil || !strings.HasPrefix(attached.Digest, "sha256:") {
		t.Fatalf("oras attach: %v: %s", err, out)
	}
	var disc struct {
		Digest    string `json:"digest"`
		Referrers []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"referrers"`
	}
	out = u.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", reg.ref("demo/files:v1"))
	if err := json.Unmarshal([]byte(out), &disc); err != nil || disc.Digest != pushed.Digest || len(disc.Referrers) != 1 ||
		disc.Referrers[0].Digest != attached.Digest || disc.Referrers[0].ArtifactType != "application/spdx+json" {
		t.Fatalf("oras discover: %v: %s", err, out)
	}
	if calls := reg.exchanges("/referrers/"); len(calls) == 0 || !strings.Contains(strings.Join(calls, "\n"), "/v2/demo/files/referrers/"+pushed.Digest) {
		t.Fatalf("oras discover did not use the referrers API: %v", calls)
	}
	out = u.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.example.other", reg.ref("demo/files:v1"))
	if err := json.Unmarshal([]byte(out), &disc); err != nil || len(disc.Referrers) != 0 {
		t.Fatalf("oras discover --artifact-type of another type: %v: %s", err, out)
	}
	if got := referrers(t, reg, "demo/files", pushed.Digest, ""); !slices.Equal(got["application/spdx+json"], []string{attached.Digest}) {
		t.Fatalf("referrers API: %v", got)
	}
	// The referrers API was used, so oras made no fallback tag (sha256-<hex>).
	if tags := strings.Fields(u.ok(t, cmd{}, oras, "repo", "tags", "--plain-http", reg.ref("demo/files"))); !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("oras repo tags demo/files = %v, want [v1] (no referrers fallback tag)", tags)
	}
	sbomDir := t.TempDir()
	u.ok(t, cmd{dir: sbomDir}, oras, "pull", "--plain-http", "-o", sbomDir, reg.ref("demo/files@"+attached.Digest))
	if got := readFile(t, filepath.Join(sbomDir, "sbom.spdx.json")); !bytes.Equal(got, sbom) {
		t.Fatalf("oras pull of the SBOM: %s", got)
	}

	// oras cp -r mirrors the artifact with its referrers into another repository.
	u.ok(t, cmd{}, oras, "cp", "-r", "--from-plain-http", "--to-plain-http", reg.ref("demo/files:v1"), reg.ref("demo/mirror/files:v1"))
	out = u.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", reg.ref("demo/mirror/files:v1"))
	if err := json.Unmarshal([]byte(out), &disc); err != nil || disc.Digest != pushed.Digest || len(disc.Referrers) != 1 || disc.Referrers[0].Digest != attached.Digest {
		t.Fatalf("oras discover in the mirror after oras cp -r: %v: %s", err, out)
	}

	// Releases uploaded through Cairn's API are <project>:<version> once published: oras
	// pulls their files, anonymously, and cannot move the tag.
	publishAll(t, reg.w.r)
	anon := newOCIUser(t)
	if tags := strings.Fields(anon.ok(t, cmd{}, oras, "repo", "tags", "--plain-http", reg.ref("demo"))); !slices.Contains(tags, "1.0.0") || !slices.Contains(tags, "2.0.0") {
		t.Fatalf("oras repo tags demo = %v, want the releases 1.0.0 and 2.0.0", tags)
	}
	for _, f := range []struct {
		version string
		file    []byte
		name    string
	}{{"1.0.0", reg.w.f1.Content, filepath.Base(reg.w.f1.Path)}, {"2.0.0", reg.w.f2.Content, filepath.Base(reg.w.f2.Path)}} {
		rel := t.TempDir()
		anon.ok(t, cmd{dir: rel}, oras, "pull", "--plain-http", "-o", rel, reg.ref("demo:"+f.version))
		entries, _ := os.ReadDir(rel)
		if got := readFile(t, filepath.Join(rel, f.name)); !bytes.Equal(got, f.file) || len(entries) != 1 {
			t.Fatalf("oras pull demo:%s: %q (%d files), want %q", f.version, got, len(entries), f.file)
		}
	}
	// An SBOM attached to a release: the release stays put, oras discover finds it.
	rel := strings.TrimSpace(u.ok(t, cmd{}, oras, "resolve", "--plain-http", reg.ref("demo:1.0.0")))
	out = u.ok(t, cmd{dir: src}, oras, "attach", "--plain-http", "--artifact-type", "application/spdx+json", "--format", "json",
		reg.ref("demo:1.0.0"), "sbom.spdx.json:application/spdx+json")
	if err := json.Unmarshal([]byte(out), &attached); err != nil {
		t.Fatalf("oras attach to a release: %v: %s", err, out)
	}
	out = anon.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", reg.ref("demo:1.0.0"))
	if err := json.Unmarshal([]byte(out), &disc); err != nil || disc.Digest != rel || len(disc.Referrers) != 1 || disc.Referrers[0].Digest != attached.Digest {
		t.Fatalf("oras discover on a release: %v: %s", err, out)
	}

	before := strings.TrimSpace(u.ok(t, cmd{}, oras, "resolve", "--plain-http", reg.ref("demo:1.0.0")))
	if out := u.fails(t, cmd{dir: src}, oras, "push", "--plain-http", reg.ref("demo:1.0.0"), "readme.txt"); !containsFold(out, "denied: tag demo:1.0.0 is a published release") {
		t.Fatalf("oras push over a release tag: %s", out)
	}
	if after := strings.TrimSpace(u.ok(t, cmd{}, oras, "resolve", "--plain-http", reg.ref("demo:1.0.0"))); after != before {
		t.Fatalf("demo:1.0.0 moved from %s to %s", before, after)
	}
}

// manifestOf fetches a manifest's bytes straight from the registry.
func manifestOf(t *testing.T, reg *ociRegistry, repo, ref string) []byte {
	t.Helper()
	st, h, body := reg.raw(t, "GET", "/v2/"+repo+"/manifests/"+ref, "", nil)
	if st != 200 {
		t.Fatalf("GET manifest %s:%s: %d %s", repo, ref, st, body)
	}
	if h.Get("Docker-Content-Digest") != digestOf(body) {
		t.Fatalf("manifest %s:%s: Docker-Content-Digest %s, content hashes to %s", repo, ref, h.Get("Docker-Content-Digest"), digestOf(body))
	}
	return body
}

// TestOCIClientsNotation: notation signs with a test key and certificate, storing the
// signature both ways (the referrers tag schema, notation's default, and the referrers
// API), and verifies it under a trust policy; an unsigned image, an image signed by a key
// the policy does not trust, and a valid signature moved onto another image are refused.
func TestOCIClientsNotation(t *testing.T) {
	crane, notation := ociClient(t, "crane"), ociClient(t, "notation")
	reg := newOCIRegistry(t, true)
	u := newOCIUser(t)
	// notation login refuses to save a password in plain text (it wants a credential
	// helper), but checks the token first; notation reads the credentials that other
	// clients (crane, oras, docker) saved in ~/.docker/config.json.
	out, errs, _ := u.run(t, cmd{stdin: "cairn_nosuchtoken_0123456789abcdef"}, notation, "login", "--insecure-registry", "-u", "cairn", "--password-stdin", reg.host)
	if !containsFold(out+errs, "unauthorized") {
		t.Fatalf("notation login with a wrong token: %s%s", out, errs)
	}
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, crane, "auth", "login", reg.host, "-u", "cairn", "--password-stdin")
	img := map[string]string{}
	for _, n := range []string{"tagschema", "referrers", "unsigned", "untrusted", "victim"} {
		img[n] = reg.ref("demo/signed@" + pushImage(t, u, crane, reg.ref("demo/signed:"+n), true, map[string][]byte{"name": []byte(n)}))
	}

	u.ok(t, cmd{}, notation, "cert", "generate-test", "--default", "cairn-e2e")
	u.ok(t, cmd{}, notation, "cert", "generate-test", "intruder") // its own trust store, ca:intruder, which the policy does not name
	policy := fmt.Sprintf(`{"version":"1.0","trustPolicies":[{"name":"cairn-e2e","registryScopes":["%s"],
		"signatureVerification":{"level":"strict"},"trustStores":["ca:cairn-e2e"],"trustedIdentities":["*"]}]}`, reg.ref("demo/signed"))
	u.ok(t, cmd{}, notation, "policy", "import", "--force", writeFile(t, t.TempDir(), "trustpolicy.json", []byte(policy)))

	// Signed with the referrers tag schema (notation's default): a sha256-<hex> tag holds
	// the index of signatures.
	out = u.ok(t, cmd{}, notation, "sign", "--insecure-registry", img["tagschema"])
	if !strings.Contains(out, "Successfully signed") {
		t.Fatalf("notation sign: %s", out)
	}
	dig := strings.SplitN(img["tagschema"], "@", 2)[1]
	if tags := strings.Fields(u.ok(t, cmd{}, crane, "ls", "--insecure", reg.ref("demo/signed"))); !slices.Contains(tags, strings.Replace(dig, ":", "-", 1)) {
		t.Fatalf("notation sign (referrers tag schema): no %s tag in %v", strings.Replace(dig, ":", "-", 1), tags)
	}
	// Signed through the referrers API: no tag, the referrers API lists the signature.
	u.ok(t, cmd{}, notation, "sign", "--insecure-registry", "--force-referrers-tag=false", img["referrers"])
	rdig := strings.SplitN(img["referrers"], "@", 2)[1]
	if tags := strings.Fields(u.ok(t, cmd{}, crane, "ls", "--insecure", reg.ref("demo/signed"))); slices.Contains(tags, strings.Replace(rdig, ":", "-", 1)) {
		t.Fatalf("notation sign --force-referrers-tag=false made a referrers tag: %v", tags)
	}
	for name, d := range map[string]string{"tagschema": dig, "referrers": rdig} {
		sigs := referrers(t, reg, "demo/signed", d, "")["application/vnd.cncf.notary.signature"]
		if len(sigs) != 1 {
			t.Fatalf("referrers API for the %s image: %d notation signatures, want 1", name, len(sigs))
		}
		if out := u.ok(t, cmd{}, notation, "ls", "--insecure-registry", img[name]); !strings.Contains(out, sigs[0]) {
			t.Fatalf("notation ls %s does not list %s: %s", name, sigs[0], out)
		}
	}

	// Both verify, for another user who holds only the trust policy and the certificate.
	for _, n := range []string{"tagschema", "referrers"} {
		if out := u.ok(t, cmd{}, notation, "verify", "--insecure-registry", img[n]); !strings.Contains(out, "Successfully verified signature for "+img[n]) {
			t.Fatalf("notation verify %s: %s", n, out)
		}
	}
	verifier := newOCIUser(t)
	crt := filepath.Join(u.home, ".config", "notation", "localkeys", "cairn-e2e.crt")
	verifier.ok(t, cmd{}, notation, "cert", "add", "--type", "ca", "--store", "cairn-e2e", crt)
	verifier.ok(t, cmd{}, notation, "policy", "import", "--force", writeFile(t, t.TempDir(), "trustpolicy.json", []byte(policy)))
	if out := verifier.ok(t, cmd{}, notation, "verify", "--insecure-registry", img["referrers"]); !strings.Contains(out, "Successfully verified") {
		t.Fatalf("notation verify by another user (anonymous pull): %s", out)
	}

	// A release published through Cairn's API, signed (referrers API) and verified.
	publishAll(t, reg.w.r)
	release := reg.ref("demo@" + digestOf(manifestOf(t, reg, "demo", "2.0.0")))
	relPolicy := strings.Replace(policy, `"registryScopes":["`+reg.ref("demo/signed")+`"]`, `"registryScopes":["`+reg.ref("demo/signed")+`","`+reg.ref("demo")+`"]`, 1)
	u.ok(t, cmd{}, notation, "policy", "import", "--force", writeFile(t, t.TempDir(), "trustpolicy.json", []byte(relPolicy)))
	u.ok(t, cmd{}, notation, "sign", "--insecure-registry", "--force-referrers-tag=false", release)
	if out := u.ok(t, cmd{}, notation, "verify", "--insecure-registry", release); !strings.Contains(out, "Successfully verified signature for "+release) {
		t.Fatalf("notation verify of a release: %s", out)
	}

	// Refused: no signature; a signature by a key outside the policy's trust store.
	if out := u.fails(t, cmd{}, notation, "verify", "--insecure-registry", img["unsigned"]); !strings.Contains(out, "no signature is associated") {
		t.Fatalf("notation verify of an unsigned image: %s", out)
	}
	u.ok(t, cmd{}, notation, "sign", "--insecure-registry", "--key", "intruder", img["untrusted"])
	if out := u.fails(t, cmd{}, notation, "verify", "--insecure-registry", img["untrusted"]); !strings.Contains(out, "signature verification failed") {
		t.Fatalf("notation verify of an image signed by an untrusted key: %s", out)
	}

	// A valid signature moved onto another image: the signature manifest of "referrers",
	// re-pushed with the victim as its subject. Its payload names the other digest.
	sigDig := referrers(t, reg, "demo/signed", rdig, "")["application/vnd.cncf.notary.signature"][0]
	var sig map[string]any
	if err := json.Unmarshal(manifestOf(t, reg, "demo/signed", sigDig), &sig); err != nil {
		t.Fatal(err)
	}
	vdig := strings.SplitN(img["victim"], "@", 2)[1]
	victimManifest := manifestOf(t, reg, "demo/signed", vdig)
	sig["subject"] = map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": vdig, "size": len(victimManifest)}
	moved, _ := json.Marshal(sig)
	if st, _, body := reg.raw(t, "PUT", "/v2/demo/signed/manifests/"+digestOf(moved), reg.w.r.AdminToken, moved); st != 201 {
		t.Fatalf("pushing the moved signature: %d %s", st, body)
	}
	if got := referrers(t, reg, "demo/signed", vdig, "")["application/vnd.cncf.notary.signature"]; !slices.Equal(got, []string{digestOf(moved)}) {
		t.Fatalf("the moved signature is not a referrer of the victim: %v", got)
	}
	if out := u.fails(t, cmd{}, notation, "verify", "--insecure-registry", img["victim"]); !strings.Contains(out, "signature verification failed") {
		t.Fatalf("notation verify with a signature moved from another image: %s", out)
	}
}

// TestOCIClientsCosign: cosign signs with a key and no transparency log, in the three ways
// it stores signatures (the sha256-<hex>.sig tag, a legacy signature pushed as an OCI 1.1
// referrer, and a Sigstore bundle pushed as a referrer), and verifies each with the key;
// the wrong key and an unsigned image are refused. The referrers API reports the bundle's
// top-level artifactType, not its config's media type.
func TestOCIClientsCosign(t *testing.T) {
	cosign := cosignClient(t)
	crane := ociClient(t, "crane")
	reg := newOCIRegistry(t, true)
	u := newOCIUser(t)
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, cosign, "login", reg.host, "-u", "cairn", "--password-stdin")
	img := map[string]string{}
	for _, n := range []string{"tag", "oci11", "bundle", "unsigned"} {
		img[n] = reg.ref("demo/cosigned@" + pushImage(t, u, crane, reg.ref("demo/cosigned:"+n), true, map[string][]byte{"name": []byte(n)}))
	}
	digest := func(n string) string { return strings.SplitN(img[n], "@", 2)[1] }
	pw := []string{"COSIGN_PASSWORD=correct horse battery"}
	alice, mallory := t.TempDir(), t.TempDir()
	u.ok(t, cmd{dir: alice, env: pw}, cosign, "generate-key-pair")
	u.ok(t, cmd{dir: mallory, env: pw}, cosign, "generate-key-pair")
	key, pub, wrong := filepath.Join(alice, "cosign.key"), filepath.Join(alice, "cosign.pub"), filepath.Join(mallory, "cosign.pub")
	offline := []string{"--allow-insecure-registry", "--allow-http-registry"}
	sign := func(n string, env []string, extra ...string) {
		args := append([]string{"sign", "--key", key, "--tlog-upload=false", "--yes"}, offline...)
		u.ok(t, cmd{env: append(slices.Clone(pw), env...)}, cosign, append(append(args, extra...), img[n])...)
	}
	verify := func(n, pubKey string, extra ...string) (string, string, int) {
		args := append([]string{"verify", "--key", pubKey, "--insecure-ignore-tlog=true"}, offline...)
		return u.run(t, cmd{}, cosign, append(append(args, extra...), img[n])...)
	}
	verified := func(n string, extra ...string) {
		t.Helper()
		out, errs, code := verify(n, pub, extra...)
		var claims []struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
			} `json:"critical"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &claims) != nil || len(claims) != 1 || claims[0].Critical.Image.Digest != digest(n) {
			t.Fatalf("cosign verify %s %v: exit %d\nstdout: %s\nstderr: %s", n, extra, code, out, errs)
		}
		if out, errs, code := verify(n, wrong, extra...); code == 0 || !strings.Contains(errs, "no matching signatures") && !strings.Contains(errs, "no matching attestations") && !strings.Contains(errs, "no signatures found") {
			t.Fatalf("cosign verify %s %v with the wrong key: exit %d\nstdout: %s\nstderr: %s", n, extra, code, out, errs)
		}
	}
	tags := func() []string {
		return strings.Fields(u.ok(t, cmd{}, crane, "ls", "--insecure", reg.ref("demo/cosigned")))
	}
	sigTag := func(n string) string { return strings.Replace(digest(n), ":", "-", 1) + ".sig" }

	// The tag scheme: the signature is the image sha256-<hex>.sig.
	sign("tag", nil)
	if !slices.Contains(tags(), sigTag("tag")) {
		t.Fatalf("cosign sign: no %s tag in %v", sigTag("tag"), tags())
	}
	verified("tag")

	// An SBOM attestation beside it (sha256-<hex>.att), verified with the key only.
	sbom := writeFile(t, t.TempDir(), "sbom.spdx.json", []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"cosigned","dataLicense":"CC0-1.0"}`))
	u.ok(t, cmd{env: pw}, cosign, append(append([]string{"attest", "--key", key, "--tlog-upload=false", "--yes", "--type", "spdxjson", "--predicate", sbom}, offline...), img["tag"])...)
	attTag := strings.TrimSuffix(sigTag("tag"), ".sig") + ".att"
	if !slices.Contains(tags(), attTag) {
		t.Fatalf("cosign attest: no %s tag in %v", attTag, tags())
	}
	attest := func(pubKey string) (string, string, int) {
		return u.run(t, cmd{}, cosign, append(append([]string{"verify-attestation", "--key", pubKey, "--insecure-ignore-tlog=true", "--type", "spdxjson"}, offline...), img["tag"])...)
	}
	if out, errs, code := attest(pub); code != 0 || !strings.Contains(out, `"payloadType":"application/vnd.in-toto+json"`) {
		t.Fatalf("cosign verify-attestation: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if out, errs, code := attest(wrong); code == 0 {
		t.Fatalf("cosign verify-attestation with the wrong key succeeded: %s %s", out, errs)
	}
	if out := u.ok(t, cmd{}, cosign, append([]string{"tree"}, append(offline, img["tag"])...)...); !strings.Contains(out, sigTag("tag")) || !strings.Contains(out, attTag) {
		t.Fatalf("cosign tree: %s", out)
	}

	// The OCI 1.1 referrers scheme: no tag; the referrers API lists the signature (its
	// artifactType is the config's media type: the manifest has no top-level one).
	sign("oci11", []string{"COSIGN_EXPERIMENTAL=1"}, "--registry-referrers-mode=oci-1-1")
	if slices.Contains(tags(), sigTag("oci11")) {
		t.Fatalf("cosign sign --registry-referrers-mode=oci-1-1 made the tag %s", sigTag("oci11"))
	}
	refs := referrers(t, reg, "demo/cosigned", digest("oci11"), "")
	if len(refs["application/vnd.dev.cosign.artifact.sig.v1+json"]) != 1 {
		t.Fatalf("referrers of the oci-1-1 signed image: %v", refs)
	}
	verified("oci11", "--experimental-oci11")
	if _, errs, code := verify("oci11", pub); code == 0 || !strings.Contains(errs, "no signatures found") {
		t.Fatalf("cosign verify without --experimental-oci11 found a signature of the oci-1-1 image (it should be in the referrers API only): exit %d: %s", code, errs)
	}

	// A Sigstore bundle as a referrer. cosign sets artifactType at the top level and in
	// the config descriptor, whose media type is the empty one: the referrers API must
	// report the top-level artifactType. Verification needs a trusted root: with a key and
	// no transparency log, an empty one.
	sign("bundle", nil, "--new-bundle-format")
	refs = referrers(t, reg, "demo/cosigned", digest("bundle"), "")
	const bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	if len(refs) != 1 || len(refs[bundleType]) != 1 {
		t.Fatalf("referrers of the bundle-signed image: %v, want one %s", refs, bundleType)
	}
	var bm struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType    string `json:"mediaType"`
			ArtifactType string `json:"artifactType"`
		} `json:"config"`
	}
	if raw := manifestOf(t, reg, "demo/cosigned", refs[bundleType][0]); json.Unmarshal(raw, &bm) != nil || bm.ArtifactType != bundleType || bm.Config.MediaType == bundleType {
		t.Fatalf("the bundle manifest does not have the shape this test expects (top-level artifactType, another config media type): %s", raw)
	}
	if got := referrers(t, reg, "demo/cosigned", digest("bundle")+"?artifactType="+url.QueryEscape(bundleType), ""); len(got[bundleType]) != 1 {
		t.Fatalf("referrers filtered by %s: %v", bundleType, got)
	}
	trustedRoot := writeFile(t, t.TempDir(), "trusted_root.json", []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`))
	verified("bundle", "--new-bundle-format", "--trusted-root", trustedRoot)

	// A release published through Cairn's API, signed as demo@<digest> in both schemes.
	publishAll(t, reg.w.r)
	img["release"] = reg.ref("demo@" + digestOf(manifestOf(t, reg, "demo", "1.0.0")))
	sign("release", nil)
	verified("release")
	sign("release", nil, "--new-bundle-format")
	verified("release", "--new-bundle-format", "--trusted-root", trustedRoot)
	if got := digestOf(manifestOf(t, reg, "demo", "1.0.0")); "demo@"+got != strings.TrimPrefix(img["release"], reg.host+"/") {
		t.Fatalf("signing moved the release tag to %s", got)
	}

	// cosign clean deletes the signature and attestation tags; verification then fails.
	u.ok(t, cmd{}, cosign, append(append([]string{"clean", "--force"}, offline...), img["tag"])...)
	if got := tags(); slices.Contains(got, sigTag("tag")) || slices.Contains(got, attTag) {
		t.Fatalf("cosign clean left %v", got)
	}
	if out, errs, code := verify("tag", pub); code == 0 || !strings.Contains(errs, "no signatures found") {
		t.Fatalf("cosign verify after cosign clean: exit %d: %s %s", code, out, errs)
	}

	// An unsigned image is refused in every scheme.
	for _, extra := range [][]string{nil, {"--experimental-oci11"}, {"--new-bundle-format", "--trusted-root", trustedRoot}} {
		if out, errs, code := verify("unsigned", pub, extra...); code == 0 {
			t.Fatalf("cosign verify %v of an unsigned image succeeded: %s %s", extra, out, errs)
		}
	}
}

// TestOCIClientsPaginationAndLargeBlobs: crane ls and oras repo tags follow the Link header
// through more tags than one page holds; a 48 MiB layer goes up with crane (streamed
// chunked upload) and a 48 MiB file with oras (POST then PUT), and both come back intact.
func TestOCIClientsPaginationAndLargeBlobs(t *testing.T) {
	crane, oras := ociClient(t, "crane"), ociClient(t, "oras")
	reg := newOCIRegistry(t, true)
	u := newOCIUser(t)
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, crane, "auth", "login", reg.host, "-u", "cairn", "--password-stdin")
	u.ok(t, cmd{stdin: reg.w.r.AdminToken}, oras, "login", "--plain-http", "-u", "cairn", "--password-stdin", reg.host)

	// 1,005 tags on one manifest (one page is at most 1,000), put straight to cairnd.
	dig := pushImage(t, u, crane, reg.ref("demo/many:base"), true, map[string][]byte{"f": []byte("many tags")})
	raw := manifestOf(t, reg, "demo/many", dig)
	want := []string{"base"}
	for i := range 1005 {
		tag := fmt.Sprintf("t%04d", i)
		req, err := http.NewRequest("PUT", reg.w.r.URL+"/v2/demo/many/manifests/"+tag, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("cairn", reg.w.r.AdminToken)
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("PUT tag %s: %d", tag, resp.StatusCode)
		}
		want = append(want, tag)
	}
	slices.Sort(want)
	reg.exchanges("")
	if got := strings.Fields(u.ok(t, cmd{}, crane, "ls", "--insecure", reg.ref("demo/many"))); !slices.Equal(got, want) {
		t.Fatalf("crane ls: %d tags, want %d", len(got), len(want))
	}
	if pages := reg.exchanges("/tags/list"); len(pages) < 2 || !strings.Contains(strings.Join(pages, "\n"), "last=") {
		t.Fatalf("crane ls did not follow the Link header: %v", pages)
	}
	if got := strings.Fields(u.ok(t, cmd{}, oras, "repo", "tags", "--plain-http", reg.ref("demo/many"))); !slices.Equal(got, want) {
		t.Fatalf("oras repo tags: %d tags, want %d", len(got), len(want))
	}
	if pages := reg.exchanges("/tags/list"); len(pages) < 2 {
		t.Fatalf("oras repo tags did not follow the Link header: %v", pages)
	}
	if got := strings.Fields(u.ok(t, cmd{}, oras, "repo", "tags", "--plain-http", "--last", "t1000", reg.ref("demo/many"))); !slices.Equal(got, want[1002:]) {
		t.Fatalf("oras repo tags --last t1000: %v, want %v", got, want[1002:])
	}

	// Large blobs. Pseudo-random bytes (a fixed xorshift stream) that gzip cannot shrink.
	big := make([]byte, 48<<20)
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < len(big); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8; j++ {
			big[i+j] = byte(x >> (8 * j))
		}
	}
	bigDig := pushImage(t, u, crane, reg.ref("demo/big:v1"), false, map[string][]byte{"big.bin": big})
	if fs := untar(t, []byte(u.ok(t, cmd{}, crane, "export", "--insecure", reg.ref("demo/big@"+bigDig), "-"))); !bytes.Equal(fs["big.bin"], big) {
		t.Fatalf("crane export of the large image: %d bytes back, want %d identical", len(fs["big.bin"]), len(big))
	}
	dir := t.TempDir()
	writeFile(t, dir, "big.bin", big)
	u.ok(t, cmd{dir: dir}, oras, "push", "--plain-http", reg.ref("demo/bigfile:v1"), "big.bin")
	out := t.TempDir()
	u.ok(t, cmd{dir: out}, oras, "pull", "--plain-http", "-o", out, reg.ref("demo/bigfile:v1"))
	if got := readFile(t, filepath.Join(out, "big.bin")); !bytes.Equal(got, big) {
		t.Fatalf("oras pull of the large file: %d bytes, want %d identical", len(got), len(big))
	}
}
