package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testenv"
	"github.com/cairn-dev/cairn/internal/testrepo"
)

// nginxOrSkip returns the nginx binary. Without one the test is skipped on a developer's
// machine and fails under CI (testenv; make test installs it).
func nginxOrSkip(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	testenv.MissingTool(t, "nginx is not installed: run `make nginx` (Debian's nginx package)")
	return ""
}

// staticDir is a directory nginx's workers (an unprivileged user when the test runs as
// root) can read, removed when the test ends.
func staticDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cairn-static-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startNginx runs deploy/nginx/cairn-static.conf, with only its listen and root lines
// replaced, in the foreground on a loopback port, and returns its base URL.
func startNginx(t *testing.T, bin, root string) string {
	t.Helper()
	return startNginxConf(t, bin, root, "../deploy/nginx/cairn-static.conf")
}

// startNginxConf is startNginx with another shipped server configuration.
func startNginxConf(t *testing.T, bin, root, confPath string) string {
	t.Helper()
	shipped, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	server := shipped
	for _, r := range []struct{ re, repl string }{
		{`(?m)^    listen [^;]*;`, "    listen " + addr + ";"},
		{`(?m)^    root [^;]*;`, "    root " + root + ";"},
	} {
		re := regexp.MustCompile(r.re)
		if len(re.FindAll(server, -1)) != 1 {
			t.Fatalf("%s: want exactly one line matching %s", confPath, r.re)
		}
		server = re.ReplaceAll(server, []byte(r.repl))
	}
	prefix := t.TempDir()
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, prefix, server)
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", prefix, "-c", confFile, "-g", "daemon off;")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // nginx: fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Logf("nginx output: %s\nnginx error.log: %s", out.String(), log)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup, which waits for it
			t.Fatalf("nginx exited: %v: %s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 10s: %s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// No transparent decompression: the test looks at what was sent.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// waitStatic waits until base serves the timestamp.json cairnd serves.
func waitStatic(t *testing.T, r *testrepo.Repo, base string) {
	t.Helper()
	want := r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil).Body
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, got := httpGet(t, base+"/metadata/timestamp.json")
		if resp.StatusCode == http.StatusOK && bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the static tier at %s did not serve cairnd's timestamp.json within 20s (it answers %d: %.200s)", base, resp.StatusCode, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// staticFiles lists the files of a static directory as URL paths, without the gzip copies.
func staticFiles(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".json.gz") {
			return err
		}
		if d.Name() == ".cairn-export.json" {
			return nil // the exporter's state
		}
		if strings.HasPrefix(d.Name(), ".") {
			return fmt.Errorf("temporary file %s left in the static directory", p)
		}
		rel, _ := filepath.Rel(dir, p)
		paths = append(paths, "/"+filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestStaticTierThroughNginx runs the shipped nginx configuration over cairnd's
// --static-dir and checks that go-tuf and tuf-js download verified releases through it,
// before and after a new release, that it answers what cairnd answers, and that a replica
// started later on the same database fills its own directory from the start (backfill).
func TestStaticTierThroughNginx(t *testing.T) {
	bin := nginxOrSkip(t)
	dir := staticDir(t)
	w := newWorldWith(t, func(c *daemon.Config) { c.StaticDir = dir })
	ngx := startNginx(t, bin, dir)
	waitStatic(t, w.r, ngx)

	cs := tufClients(t, w.r.RootJSON, ngx)
	for _, c := range cs {
		for _, f := range []testrepo.File{w.f1, w.f2} {
			got, err := c.get(t, f.Path)
			if err != nil {
				t.Fatalf("%s through nginx: %s: %v", c.name, f.Path, err)
			}
			if !bytes.Equal(got, f.Content) {
				t.Fatalf("%s through nginx: %s: got %q", c.name, f.Path, got)
			}
		}
	}

	// A new release: the same clients, with the metadata they trust already, see it once the
	// static timestamp.json moved.
	f3 := testrepo.File{Path: "demo/3.0.0/demo-3.0.0.tar.gz", Content: bytes.Repeat([]byte("the third release "), 200)}
	w.r.PutBlob(t, w.r.AdminToken, f3.Content)
	exp := time.Now().Add(90 * 24 * time.Hour)
	if resp := w.r.Submit(t, w.r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(4, exp, w.f1, w.f2, f3), w.alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 3: %d %s", resp.Status, resp.Body)
	}
	waitStatic(t, w.r, ngx)
	for _, c := range cs {
		got, err := c.get(t, f3.Path)
		if err != nil {
			t.Fatalf("%s through nginx after the new release: %v", c.name, err)
		}
		if !bytes.Equal(got, f3.Content) {
			t.Fatalf("%s through nginx: %s: got %d bytes", c.name, f3.Path, len(got))
		}
	}

	// The export reports itself in /metrics.
	var ts struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(w.r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil).Body, &ts); err != nil {
		t.Fatal(err)
	}
	// (The gauge moves just after the rename nginx may already have served.)
	wantMetrics := []string{"\ncairn_static_export_failing 0\n", fmt.Sprintf("\ncairn_static_timestamp_version %d\n", ts.Signed.Version)}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		metrics := string(w.r.Do(t, http.MethodGet, "/metrics", "", "", nil).Body)
		missing := ""
		for _, want := range wantMetrics {
			if !strings.Contains(metrics, want) {
				missing = strings.TrimSpace(want)
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("/metrics has no line %q", missing)
			break
		}
	}

	// Every file is what cairnd serves at the same path, with cairnd's Cache-Control.
	paths := staticFiles(t, dir)
	var versioned, targets int
	for _, p := range paths {
		resp, got := httpGet(t, ngx+p)
		want := w.r.Do(t, http.MethodGet, p, "", "", nil)
		if resp.StatusCode != http.StatusOK || want.Status != http.StatusOK || !bytes.Equal(got, want.Body) {
			t.Errorf("%s: nginx %d (%d bytes), cairnd %d (%d bytes): want the same bytes", p, resp.StatusCode, len(got), want.Status, len(want.Body))
			continue
		}
		mutable := p == "/metadata/timestamp.json" || p == "/metadata/root.json"
		for _, h := range []string{"Cache-Control", "Content-Type"} {
			if g, c := resp.Header.Get(h), want.Header.Get(h); g != c {
				t.Errorf("%s: nginx %s %q, cairnd %q", p, h, g, c)
			}
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no Access-Control-Allow-Origin: *", p)
		}
		switch {
		case strings.HasPrefix(p, "/targets/"):
			targets++
		case !mutable:
			versioned++
		}
	}
	if targets != 3 || versioned < 8 {
		t.Errorf("static directory holds %d targets and %d versioned metadata files, want 3 and at least 8: %v", targets, versioned, paths)
	}

	// Unknown versions are 404 (clients probe N+1.root.json), never cached as immutable,
	// and temporary files are never served.
	for _, p := range []string{"/metadata/2.root.json", "/metadata/99.demo.json", "/metadata/.cairn-tmp-1", "/api/v1/status", "/"} {
		resp, _ := httpGet(t, ngx+p)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s through nginx: %d, Cache-Control %q; want 404, not immutable", p, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}

	// Metadata of 1 KiB or more has a gzip copy, served to clients that accept it.
	var gz string
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(dir, p) + ".gz"); err == nil {
			gz = p
			break
		}
	}
	if gz == "" {
		t.Error("no gzip copy of any metadata file in the static directory")
	} else if resp, _ := httpGet(t, ngx+gz, "Accept-Encoding", "gzip"); resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("GET %s with Accept-Encoding gzip through nginx: Content-Encoding %q", gz, resp.Header.Get("Content-Encoding"))
	}

	// Backfill: a replica started now with an empty directory writes everything that was
	// published before it started.
	dir2 := staticDir(t)
	b := testrepo.Boot(t, w.r.Config.DatabaseURL, func(c *daemon.Config) {
		c.DataDir, c.NoPublisher, c.StaticDir = w.r.Dir, true, dir2
	})
	ngx2 := startNginx(t, bin, dir2)
	waitStatic(t, b, ngx2)
	if got := staticFiles(t, dir2); strings.Join(got, "\n") != strings.Join(paths, "\n") {
		t.Errorf("backfilled directory lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(paths, "\n"))
	}
	for _, c := range tufClients(t, w.r.RootJSON, ngx2) {
		got, err := c.get(t, f3.Path)
		if err != nil || !bytes.Equal(got, f3.Content) {
			t.Fatalf("%s through the backfilled directory: %v", c.name, err)
		}
	}

	// A database that went back (here: a state file naming an audit entry it does not hold)
	// makes the next replica check every file: one with other bytes of the same length,
	// which a plain pass would keep, is written again.
	stale := filepath.Join(dir2, "metadata", "1.targets.json")
	good, err := os.ReadFile(stale)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(good, []byte(`"targets"`), []byte(`"TARGETS"`), 1)
	if bytes.Equal(bad, good) {
		t.Fatal("1.targets.json has no \"targets\" to alter")
	}
	for name, b := range map[string][]byte{stale: bad, filepath.Join(dir2, ".cairn-export.json"): []byte(`{"seq": 1, "hash": "not the audit log's"}`)} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := testrepo.Boot(t, w.r.Config.DatabaseURL, func(c *daemon.Config) {
		c.DataDir, c.NoPublisher, c.StaticDir = w.r.Dir, true, dir2
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got, _ := os.ReadFile(stale); bytes.Equal(got, good) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not rewrite the altered 1.targets.json after the audit log went back", c.URL)
		}
	}
}
