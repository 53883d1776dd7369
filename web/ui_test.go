package web_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pagesOf lists the pages of a world, each of which must render without console errors
// and without WCAG 2.1 A/AA violations.
var pagesOf = []string{
	"/", "/search?q=de", "/projects/demo", "/projects/demo/2.0.0", "/projects/demo/1.0.0", "/projects/duo",
	"/roles/root", "/roles/root/1", "/roles/timestamp", "/roles/snapshot", "/roles/targets",
	"/roles/recently-claimed", "/roles/demo", "/roles/root/diff", "/log", "/log/transparency", "/trust", "/browse",
}

// TestPagesInBrowser: every page renders in Chromium with no console error and no axe-core
// violation of WCAG 2.1 A/AA, in the light and the dark theme; with a pinned root every
// verifying page says "Verified"; the home page links to the recent releases, and a click
// leads to a release whose file downloads with the signed hash.
func TestPagesInBrowser(t *testing.T) {
	w := newWorld(t)
	b := newBrowser(t)
	for _, dark := range []bool{false, true} {
		b.setDark(t, dark)
		for _, p := range pagesOf {
			b.open(t, w.r.URL+p)
			b.settle(t)
			if v := b.axe(t); len(v) > 0 {
				t.Errorf("%s (dark %v): axe-core: %d violation(s):\n%s", p, dark, len(v), strings.Join(v, "\n"))
			}
			b.noErrors(t, p)
		}
	}
	b.setDark(t, false)

	w.pin(t, b, w.r.URL)
	for _, p := range []string{"/", "/projects/demo", "/projects/demo/2.0.0", "/projects/demo/1.0.0", "/roles/root/1", "/roles/timestamp", "/roles/snapshot", "/roles/targets", "/roles/recently-claimed", "/roles/demo"} {
		b.open(t, w.r.URL+p)
		cls, text := b.waitVerdict(t)
		if !strings.Contains(cls, "verified") || !strings.Contains(text, "Verified through TUF from root version 1, snapshot") {
			t.Errorf("%s: verification %q: %q (%s)", p, cls, text, b.text(t, "#verify-detail"))
		}
		if v := b.axe(t); len(v) > 0 {
			t.Errorf("%s, verified: axe-core: %s", p, strings.Join(v, "\n"))
		}
		b.noErrors(t, p+" (verified)")
	}

	// Home: the published versions it shows are the ones TUF verified.
	b.open(t, w.r.URL+"/")
	b.waitVerdict(t)
	for _, role := range []string{"timestamp", "snapshot", "root"} {
		if got := b.text(t, `.vrole[data-role="`+role+`"] .v`); got != "Verified" {
			t.Errorf("home: %s version marked %q", role, got)
		}
	}

	// Home → the newest release → its file, downloaded and hashed in the page.
	link := b.el(t, `#recent a.release-link[href="/projects/demo/2.0.0"]`)
	b.check(t, link.Click("left", 1))
	b.waitFor(t, `() => location.pathname === '/projects/demo/2.0.0'`)
	cls, _ := b.waitVerdict(t)
	if !strings.Contains(cls, "verified") {
		t.Fatalf("release page after navigation: %s", cls)
	}
	if got := b.text(t, `#files tr[data-path="demo/2.0.0/demo-2.0.0.tar.gz"] code.sha`); got != sha(w.f2.Content) {
		t.Errorf("release page shows sha256 %q, want %q", got, sha(w.f2.Content))
	}
	if got := b.text(t, `#files tr[data-path="demo/2.0.0/demo-2.0.0.tar.gz"] .v`); got != "Verified" {
		t.Errorf("file cell says %q, want Verified", got)
	}
	got := b.eval(t, `() => fetch(document.querySelector('#files a.download').href).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b)).then(d => [...new Uint8Array(d)].map(x => x.toString(16).padStart(2, '0')).join(''))`).Value.Str()
	if got != sha(w.f2.Content) {
		t.Errorf("downloaded file has sha256 %s, want %s", got, sha(w.f2.Content))
	}
	b.noErrors(t, "navigation")
}

// TestEveryHTMLResponseHasCSP: every page, error pages included, carries a strict
// Content-Security-Policy: scripts and styles from this origin only, nothing inline.
func TestEveryHTMLResponseHasCSP(t *testing.T) {
	w := newWorld(t)
	for _, p := range append(pagesOf, "/projects/nope", "/roles/nope/1", "/projects/demo/9.9", "/search?q="+strings.Repeat("x", 200)) {
		resp, err := http.Get(w.r.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: content type %q", p, resp.Header.Get("Content-Type"))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s (%d): Content-Security-Policy %q", p, resp.StatusCode, csp)
		}
		if regexp.MustCompile(`<script(?:\s+[^>]*)?>[^<]+</script>|<[a-z][^>]*\s(?:on[a-z]+|style)=`).Match(body) {
			t.Errorf("%s: inline script, handler or style in the page", p)
		}
	}
}

// tamperProxy stands between the browser and cairnd, and rewrites responses: what an
// attacker on the network or in the server's storage can do.
func tamperProxy(t *testing.T, target string, rewrite func(path string, body []byte) []byte) string {
	t.Helper()
	u, _ := url.Parse(target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		nb := rewrite(resp.Request.URL.Path, b)
		resp.Body = io.NopCloser(bytes.NewReader(nb))
		resp.ContentLength = int64(len(nb))
		resp.Header.Del("Content-Length")
		resp.Header.Del("ETag")
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestVerificationFailsVisiblyOnTamper: a proxy changes a target's hash in the page the
// server renders, in the project's signed role, or the bytes of the snapshot; the release
// page must say so, in red.
func TestVerificationFailsVisiblyOnTamper(t *testing.T) {
	w := newWorld(t)
	good, evil := sha(w.f2.Content), sha([]byte("evil"))
	for _, tc := range []struct {
		name    string
		rewrite func(path string, b []byte) []byte
		want    string
	}{
		{"target hash in the page", func(p string, b []byte) []byte {
			if p == "/projects/demo/2.0.0" {
				return bytes.ReplaceAll(b, []byte(good), []byte(evil))
			}
			return b
		}, "MISMATCH"},
		{"target hash in the signed role", func(p string, b []byte) []byte {
			if regexp.MustCompile(`^/metadata/\d+\.demo\.json$`).MatchString(p) {
				return bytes.ReplaceAll(b, []byte(good), []byte(evil))
			}
			return b
		}, "FAILED"},
		{"bytes of the snapshot", func(p string, b []byte) []byte {
			if regexp.MustCompile(`^/metadata/\d+\.snapshot\.json$`).MatchString(p) {
				return bytes.Replace(b, []byte(`"version":`), []byte(`"version": `), 1)
			}
			return b
		}, "FAILED"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			base := tamperProxy(t, w.r.URL, tc.rewrite)
			b := newBrowser(t)
			w.pin(t, b, base)
			b.open(t, base+"/projects/demo/2.0.0")
			cls, text := b.waitVerdict(t)
			if !strings.Contains(cls, "failed") || !strings.Contains(text, "FAILED") {
				t.Fatalf("verification %q: %q", cls, text)
			}
			page := b.text(t, "#verify") + b.text(t, "#files")
			if !strings.Contains(page, tc.want) {
				t.Errorf("the page does not say %q: %s", tc.want, page)
			}
			color := b.eval(t, `() => getComputedStyle(document.querySelector('#verify-status')).color`).Value.Str()
			if color != "rgb(164, 14, 38)" {
				t.Errorf("the failure is shown in %s, not red", color)
			}
			if strings.Contains(b.text(t, "#files tbody"), "Verified") {
				t.Errorf("a file is marked Verified although verification failed: %s", b.text(t, "#files tbody"))
			}
		})
	}
}

// TestBrowseGoTUFRepository: the generic browser opens a repository built with go-tuf
// (hash bins, succinct hash bins, a three-level tree) on another origin, verifies every
// role, and shows hostile custom data as text.
func TestBrowseGoTUFRepository(t *testing.T) {
	w := newWorld(t)
	repo := buildGoTUFRepo(t, "", "")
	b := newBrowser(t)
	b.open(t, w.r.URL+"/browse?"+url.Values{"url": {repo.URL}, "root": {repo.RootHash}}.Encode())
	b.el(t, "#browse-status.verified")
	b.waitFor(t, `() => !document.querySelector('details.role:not([data-loaded="true"])')`)
	var loaded []string
	b.check(t, b.eval(t, `() => [...document.querySelectorAll('details.role[data-loaded="true"]')].map(d => d.dataset.role)`).Value.Unmarshal(&loaded))
	if len(loaded) != len(repo.Roles) {
		t.Errorf("verified %d roles %v, want %d %v", len(loaded), loaded, len(repo.Roles), repo.Roles)
	}
	for _, role := range []string{"a11", "bins-7", "sbin-0"} {
		if !strings.Contains(b.text(t, `details.role[data-role="`+role+`"] > summary`), "Verified") {
			t.Errorf("role %s is not shown verified", role)
		}
	}
	if !strings.Contains(b.text(t, "#browse-status"), "Verified through TUF from root version 1, snapshot 1") {
		t.Errorf("status: %s", b.text(t, "#browse-status"))
	}
	if b.eval(t, `() => window.__xss === undefined`).Value.Bool() == false {
		t.Fatal("a script from the repository's custom data ran")
	}
	if !strings.Contains(b.text(t, `details.role[data-role="a11"]`), "<script>window.__xss=1</script>") {
		t.Error("the hostile custom data is not shown as text")
	}
	if v := b.axe(t); len(v) > 0 {
		t.Errorf("browse: axe-core: %s", strings.Join(v, "\n"))
	}
	b.noErrors(t, "browse")
}

// TestBrowseFlagsBrokenSignature: one of two signatures on a role (threshold 1) is broken:
// the role verifies, and the broken signature is flagged in red; a role whose only
// signature is broken fails, in red.
func TestBrowseFlagsBrokenSignature(t *testing.T) {
	w := newWorld(t)
	repo := buildGoTUFRepo(t, "a1", "a11")
	b := newBrowser(t)
	b.open(t, w.r.URL+"/browse?"+url.Values{"url": {repo.URL}, "root": {repo.RootHash}}.Encode())
	b.el(t, "#browse-status.verified")
	b.waitFor(t, `() => !document.querySelector('details.role:not([data-loaded="true"]):not([data-loaded="failed"])')`)
	bad := b.el(t, `details.role[data-role="a1"] li[data-state="invalid"]`)
	if txt, _ := bad.Text(); !strings.Contains(txt, "INVALID SIGNATURE") {
		t.Errorf("broken signature shown as %q", txt)
	}
	if !strings.Contains(b.text(t, `details.role[data-role="a1"] > summary`), "1 INVALID") {
		t.Errorf("a1's summary hides the broken signature: %s", b.text(t, `details.role[data-role="a1"] > summary`))
	}
	failed := b.text(t, `details.role[data-role="a11"][data-loaded="failed"]`)
	if !strings.Contains(failed, "VERIFICATION FAILED") || !strings.Contains(failed, "INVALID SIGNATURE") {
		t.Errorf("a11: %s", failed)
	}
	color := b.eval(t, `() => getComputedStyle(document.querySelector('details.role[data-role="a1"] li[data-state="invalid"]')).color`).Value.Str()
	if color != "rgb(164, 14, 38)" {
		t.Errorf("the broken signature is shown in %s, not red", color)
	}
}

// TestXSS: script tags, quotes and right-to-left overrides in every field a user controls
// (yank reasons, custom data, the search, the browser's URL; project names, versions and
// file names are restricted to [A-Za-z0-9._+-]) are shown as text and never run.
func TestXSS(t *testing.T) {
	w := newWorld(t)
	repo := buildGoTUFRepo(t, "", "")
	b := newBrowser(t)
	w.pin(t, b, w.r.URL)
	for _, p := range []string{
		"/projects/demo", "/projects/demo/1.0.0", "/roles/demo", "/roles/demo/3",
		"/search?" + url.Values{"q": {hostile}}.Encode(),
		"/browse?" + url.Values{"url": {`javascript:window.__xss=3//"><script>window.__xss=4</script>`}}.Encode(),
		"/browse?" + url.Values{"url": {repo.URL}, "root": {repo.RootHash}}.Encode(),
	} {
		b.open(t, w.r.URL+p)
		b.settle(t)
		if !b.eval(t, `() => window.__xss === undefined`).Value.Bool() {
			t.Errorf("%s: an injected script ran", p)
		}
		if n := b.eval(t, `() => document.scripts.length`).Value.Int(); n != 1 {
			t.Errorf("%s: %d script elements, want only the page's own", p, n)
		}
		if n := b.eval(t, `() => document.querySelectorAll('img').length`).Value.Int(); n != 0 {
			t.Errorf("%s: an injected img element", p)
		}
		text := b.text(t, "body")
		if strings.Contains(text, "\u202e") {
			t.Errorf("%s: a raw right-to-left override reaches the page", p)
		}
		switch {
		case strings.HasPrefix(p, "/projects/demo"), strings.HasPrefix(p, "/roles/demo"):
			if !strings.Contains(text, "<script>window.__xss=1</script>") || !strings.Contains(text, "U+202E") {
				t.Errorf("%s: the hostile text is not shown as text with its override made visible", p)
			}
		}
	}
	b.noErrors(t, "xss")
}

// TestReadableWithoutJavaScript: with JavaScript off every page reads, and verification
// says it did not run.
func TestReadableWithoutJavaScript(t *testing.T) {
	w := newWorld(t)
	b := newBrowser(t)
	b.scripts(t, false)
	b.open(t, w.r.URL+"/projects/demo/2.0.0")
	if s := b.text(t, "#verify-status"); !strings.Contains(s, "did not run") {
		t.Errorf("verification status without JavaScript: %q", s)
	}
	if s := b.text(t, "#files"); !strings.Contains(s, sha(w.f2.Content)) {
		t.Errorf("files without JavaScript: %q", s)
	}
	b.open(t, w.r.URL+"/projects/demo")
	if s := b.text(t, "#releases"); !strings.Contains(s, "2.0.0") || !strings.Contains(s, "yanked") {
		t.Errorf("releases without JavaScript: %q", s)
	}
	b.open(t, w.r.URL+"/search?q=du")
	if s := b.text(t, "main"); !strings.Contains(s, "duo") {
		t.Errorf("search without JavaScript: %q", s)
	}
}

// TestScreenshots writes the README's screenshots when CAIRN_SCREENSHOTS names a
// directory (make screenshots).
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("CAIRN_SCREENSHOTS")
	if dir == "" {
		t.Skip("set CAIRN_SCREENSHOTS=DIR (make screenshots) to write the README's screenshots")
	}
	w := newWorld(t)
	repo := buildGoTUFRepo(t, "a1", "")
	b := newBrowser(t)
	w.pin(t, b, w.r.URL)
	shots := []struct{ file, path string }{
		{"home.png", "/"}, {"project.png", "/projects/demo"}, {"release.png", "/projects/demo/2.0.0"},
		{"metadata.png", "/roles/recently-claimed"},
	}
	for _, s := range shots {
		b.open(t, w.r.URL+s.path)
		b.waitVerdict(t)
		b.screenshot(t, filepath.Join(dir, s.file), true)
	}
	b.open(t, w.r.URL+"/browse?"+url.Values{"url": {repo.URL}, "root": {repo.RootHash}}.Encode())
	b.el(t, "#browse-status.verified")
	b.waitFor(t, `() => !document.querySelector('details.role:not([data-loaded="true"]):not([data-loaded="failed"])')`)
	b.screenshot(t, filepath.Join(dir, "browse.png"), false)
	b.setDark(t, true)
	b.open(t, w.r.URL+"/projects/demo/2.0.0")
	b.waitVerdict(t)
	b.screenshot(t, filepath.Join(dir, "release-dark.png"), false)
}

// TestETagsAndCORS: pages answer 304 to their ETag until what they show changes; metadata
// and targets carry the CORS headers a browser needs, and answer preflights.
func TestETagsAndCORS(t *testing.T) {
	w := newWorld(t)
	get := func(path, inm string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, w.r.URL+path, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		req.Header.Set("Origin", "https://elsewhere.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	r1 := get("/projects/demo", "")
	etag := r1.Header.Get("ETag")
	if r1.StatusCode != http.StatusOK || etag == "" || r1.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("project page: %d, ETag %q, Cache-Control %q", r1.StatusCode, etag, r1.Header.Get("Cache-Control"))
	}
	if r := get("/projects/demo", etag); r.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d", r.StatusCode)
	}
	// A co-signature changes the pending proposal of duo, not demo; a new upload of demo
	// changes demo's page.
	f := []byte("the third release of demo")
	w.r.PutBlob(t, w.r.AdminToken, f)
	md := testrepoRole(t, w, 4, w.f1, w.f2, testrepoFile("demo/3.0.0/demo-3.0.0.tar.gz", f))
	if resp := w.r.Submit(t, w.r.AdminToken, "demo", md); resp.Status != http.StatusCreated {
		t.Fatalf("upload 3: %d %s", resp.Status, resp.Body)
	}
	if r := get("/projects/demo", etag); r.StatusCode != http.StatusOK || r.Header.Get("ETag") == etag {
		t.Fatalf("after an upload: %d, ETag %q (was %q)", r.StatusCode, r.Header.Get("ETag"), etag)
	}

	for _, p := range []string{"/metadata/timestamp.json", "/metadata/1.root.json", "/targets/demo/2.0.0/" + sha(w.f2.Content) + ".demo-2.0.0.tar.gz"} {
		r := get(p, "")
		if r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "ETag") {
			t.Errorf("%s: %d, CORS %q / %q", p, r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Expose-Headers"))
		}
		req, _ := http.NewRequest(http.MethodOptions, w.r.URL+p, nil)
		req.Header.Set("Origin", "https://elsewhere.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "range")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") {
			t.Errorf("preflight %s: %d %v", p, resp.StatusCode, resp.Header)
		}
	}
	// The REST API and the pages do not carry CORS headers.
	if r := get("/api/v1/projects", ""); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the REST API answers cross-origin reads")
	}
}

// TestBrowseCairnRepository: the generic browser on a Cairn repository, across origins (the
// page from localhost, the repository at 127.0.0.1), so it works only through the CORS
// headers cairnd sends with metadata.
func TestBrowseCairnRepository(t *testing.T) {
	w := newWorld(t)
	u, _ := url.Parse(w.r.URL)
	page := "http://localhost:" + u.Port()
	b := newBrowser(t)
	b.open(t, page+"/browse?"+url.Values{"url": {w.r.URL + "/metadata/"}, "root": {w.rootHash}}.Encode())
	b.el(t, "#browse-status.verified")
	b.waitFor(t, `() => !document.querySelector('details.role:not([data-loaded="true"])')`)
	for _, role := range []string{"targets", "recently-claimed", "demo", "duo"} {
		if !strings.Contains(b.text(t, `details.role[data-role="`+role+`"] > summary`), "Verified") {
			t.Errorf("role %s is not shown verified", role)
		}
	}
	if !strings.Contains(b.text(t, `details.role[data-role="demo"]`), "demo/2.0.0/demo-2.0.0.tar.gz") {
		t.Error("demo's targets are not listed")
	}
	b.noErrors(t, "browse cairn")
}
