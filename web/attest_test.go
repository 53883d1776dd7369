package web_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest/attesttest"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// TestReleasePageListsAttestations: a release page lists each file's attestations with
// their signer identities and predicate types, links the exact bundles, marks them as not
// verified by the browser, and shows a hostile predicate type as text. A release with
// none says so.
func TestReleasePageListsAttestations(t *testing.T) {
	sig := attesttest.New(t)
	u, drop, err := testdb.Create("web_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	trFile := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(trFile, sig.TrustedRoot(t), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.SigstoreTrustedRoot = trFile })
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	f1 := testrepo.File{Path: "demo/1.0/demo.tgz", Content: []byte("demo release bytes")}
	f2 := testrepo.File{Path: "demo/2.0/demo.tgz", Content: []byte("demo release two")}
	exp := time.Now().Add(24 * time.Hour)
	r.PutBlob(t, r.AdminToken, f1.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, exp, f1), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 1.0: %d %s", resp.Status, resp.Body)
	}
	r.PutBlob(t, r.AdminToken, f2.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(3, exp, f1, f2), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 2.0: %d %s", resp.Status, resp.Body)
	}
	subject := attesttest.File("demo.tgz", f1.Content)
	hostileType := "https://example.org/" + hostile
	var bundles []string
	for _, b := range [][]byte{
		sig.Bundle(t, "alice@example.org", "https://issuer.example", attesttest.Options{}, subject),
		sig.Bundle(t, "bob@example.org", "https://issuer.example", attesttest.Options{PredicateType: hostileType}, subject),
		sig.Bundle(t, "alice@example.org", "https://issuer.example", attesttest.Options{PredicateType: "https://spdx.dev/Document"}, subject),
	} {
		res := r.Do(t, http.MethodPost, "/api/v1/attestations/"+subject.SHA256, r.AdminToken, api.MediaSigstoreBundle, b)
		if res.Status != http.StatusCreated {
			t.Fatalf("posting an attestation: %d %s", res.Status, res.Body)
		}
		bundles = append(bundles, sha(b))
	}

	page := func(p string) string {
		t.Helper()
		resp, err := http.Get(r.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
		}
		return string(body)
	}
	body := page("/projects/demo/1.0")
	for _, want := range []string{
		`id="att-unverified"`,
		"cairn attestations demo@1.0",
		"3 attestation(s) by 2 distinct identities",
		"alice@example.org", "bob@example.org", "https://issuer.example",
		attesttest.SLSAProvenance, "https://spdx.dev/Document",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the release page with attestations does not say %q", want)
		}
	}
	for _, b := range bundles {
		link := "/api/v1/attestations/" + subject.SHA256 + "/" + b
		if !strings.Contains(body, `href="`+link+`"`) {
			t.Errorf("no link to bundle %s", link)
			continue
		}
		// The link gives the exact bytes that were posted.
		if got := sha([]byte(page(link))); got != b {
			t.Errorf("%s serves bytes with sha256 %s", link, got)
		}
	}
	if strings.Contains(body, "<script>window.__xss") || strings.Contains(body, "<img src=x") {
		t.Error("a hostile predicate type reached the page as markup")
	}
	if !strings.Contains(body, "&lt;script&gt;window.__xss") {
		t.Error("the hostile predicate type is not shown as text")
	}

	body = page("/projects/demo/2.0")
	if !strings.Contains(body, `id="att-none"`) || strings.Contains(body, `id="att-unverified"`) {
		t.Error("a release with no attestations does not say so")
	}
}

// TestProjectPageShowsDeclaredLinks: the homepage and repository the maintainers signed
// into the published role are shown, as text and as links; a javascript: URL never
// reaches the page (the links are https only, so it reads as none).
func TestProjectPageShowsDeclaredLinks(t *testing.T) {
	w := newWorld(t)
	exp := time.Now().Add(90 * 24 * time.Hour)
	for i, links := range []map[string]any{
		{"homepage": "javascript:alert(1)"},
		{"homepage": "https://demo.example", "repository": "https://github.com/demo/demo"},
	} {
		md := testrepo.Role(int64(4+i), exp, w.f1, w.f2)
		md.Signed.UnrecognizedFields = map[string]any{tufrepo.ProjectLinksField: links}
		if resp := w.r.Submit(t, w.r.AdminToken, "demo", testrepo.Sign(t, md, w.alice)); resp.Status != http.StatusCreated {
			t.Fatalf("role with links %v: %d %s", links, resp.Status, resp.Body)
		}
		resp, err := http.Get(w.r.URL + "/projects/demo")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(body)
		switch i {
		case 0:
			if strings.Contains(page, `id="links"`) || strings.Contains(page, "javascript:") {
				t.Errorf("a javascript: homepage reached the page")
			}
		case 1:
			if !strings.Contains(page, `href="https://demo.example"`) || !strings.Contains(page, `href="https://github.com/demo/demo"`) {
				t.Errorf("the declared links are not on the page")
			}
		}
	}
}
