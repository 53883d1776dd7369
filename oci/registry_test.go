package oci_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
)

// One registry serves the tests of this file; each test uses its own repositories.
var (
	bootOnce sync.Once
	shared   *testrepo.Repo
	tokens   map[string]string
)

const testMaxBlob = 1 << 20

// registry boots cairnd once (anonymous pull on, a small blob limit) with tokens:
// "admin", "alpha" (project alpha), "beta" (project beta) and "revoked".
func registry(t *testing.T) (*testrepo.Repo, map[string]string) {
	t.Helper()
	bootOnce.Do(func() {
		// The server outlives the first test (it serves every test of the package), so it is
		// booted with a testing.TB whose Cleanup never runs, in a directory of TestMain's,
		// which stops it at the end.
		shared = testrepo.Boot(noCleanup{t}, dbURL, func(c *daemon.Config) {
			c.DataDir = sharedDir
			c.MaxBlobSize = testMaxBlob
			c.OCIAnonymousPull = true
		})
		tokens = map[string]string{"admin": shared.AdminToken}
		ctx := context.Background()
		for _, p := range []string{"alpha", "beta", "revoked"} {
			tok, rec, err := shared.DB.CreateToken(ctx, store.NewTokenSpec{Name: p, Projects: []string{p}})
			if err != nil {
				t.Fatal(err)
			}
			tokens[p] = tok
			if p == "revoked" {
				if err := shared.DB.RevokeToken(ctx, rec.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	if shared == nil {
		t.Fatal("the shared registry did not start")
	}
	return shared, tokens
}

type noCleanup struct{ *testing.T }

func (noCleanup) Cleanup(func()) {}

type req struct {
	method, path string
	auth         string // "" anonymous, "basic:<token>", "bearer:<token>"
	header       map[string]string
	body         []byte
	chunked      bool // send without Content-Length
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) code() string {
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &e)
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func do(t *testing.T, base string, q req) resp {
	t.Helper()
	var body io.Reader = bytes.NewReader(q.body)
	if q.chunked {
		body = io.MultiReader(bytes.NewReader(q.body)) // hides the length: chunked encoding
	}
	hr, err := http.NewRequest(q.method, base+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.chunked {
		hr.ContentLength = -1
	}
	switch {
	case strings.HasPrefix(q.auth, "basic:"):
		hr.SetBasicAuth("anyone", strings.TrimPrefix(q.auth, "basic:"))
	case strings.HasPrefix(q.auth, "bearer:"):
		hr.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(q.auth, "bearer:"))
	}
	for k, v := range q.header {
		hr.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func sha512d(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(s[:])
}

// pushBlob pushes a blob monolithically and fails the test unless it is stored.
func pushBlob(t *testing.T, base, repo, auth string, b []byte) string {
	t.Helper()
	d := sha(b)
	r := do(t, base, req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + d, auth: auth, body: b, header: map[string]string{"Content-Type": "application/octet-stream"}})
	if r.status != http.StatusCreated {
		t.Fatalf("pushing blob to %s: %d %s", repo, r.status, r.body)
	}
	return d
}

func imageManifest(config string, configSize int, layers ...[]byte) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json", desc{"application/vnd.oci.image.config.v1+json", config, configSize}, []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar", sha(l), len(l)})
	}
	b, _ := json.Marshal(m)
	return b
}

// state is everything a refused request must leave unchanged: the registry's rows and
// the files of the blob store (blobs of both algorithms and upload sessions, with sizes).
func state(t *testing.T, r *testrepo.Repo) string {
	t.Helper()
	var sb strings.Builder
	ctx := context.Background()
	for _, q := range []string{
		`SELECT name FROM oci_repositories ORDER BY 1`,
		`SELECT digest || ' ' || size FROM oci_blobs ORDER BY 1`,
		`SELECT repo || ' ' || digest FROM oci_repo_blobs ORDER BY 1`,
		`SELECT repo || ' ' || digest || ' ' || md5(raw) FROM oci_manifests ORDER BY 1`,
		`SELECT repo || ' ' || manifest || ' ' || ref FROM oci_manifest_refs ORDER BY 1`,
		`SELECT repo || ':' || tag || ' ' || digest FROM oci_tags ORDER BY 1`,
		`SELECT id || ' ' || repo || ' ' || size FROM oci_uploads ORDER BY 1`,
		`SELECT encode(sha256, 'hex') FROM blobs ORDER BY 1`,
	} {
		rows, err := r.DB.Pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			sb.WriteString(s + "\n")
		}
		rows.Close()
		sb.WriteString("--\n")
	}
	var files []string
	dir := r.Config.BlobDir
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, _ := d.Info()
		rel, _ := filepath.Rel(dir, p)
		files = append(files, fmt.Sprintf("%s %d", rel, fi.Size()))
		return nil
	})
	slices.Sort(files)
	sb.WriteString(strings.Join(files, "\n"))
	return sb.String()
}

// TestBadInput sends every kind of bad request and checks the spec's status and error
// code, a message, and that the database rows and blob files are exactly as before.
func TestBadInput(t *testing.T) {
	r, tok := registry(t)
	base := r.URL
	alpha := "basic:" + tok["alpha"]
	repo := "alpha/bad"

	// Setup: a blob in the repository and an open upload session holding 10 bytes.
	layer := []byte("a layer of the bad-input test")
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	pushBlob(t, base, repo, alpha, layer)
	cfgDigest := pushBlob(t, base, repo, alpha, config)
	start := do(t, base, req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/", auth: alpha})
	if start.status != http.StatusAccepted {
		t.Fatalf("starting an upload: %d %s", start.status, start.body)
	}
	session := start.header.Get("Location")
	if p := do(t, base, req{method: "PATCH", path: session, auth: alpha, body: []byte("0123456789"), header: map[string]string{"Content-Range": "0-9"}}); p.status != http.StatusAccepted {
		t.Fatalf("first chunk: %d %s", p.status, p.body)
	}

	good := imageManifest(cfgDigest, len(config), layer)
	missing := imageManifest(cfgDigest, len(config), layer, []byte("never pushed"))
	bigBlob := bytes.Repeat([]byte("x"), testMaxBlob+1)
	bigManifest := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"`), bytes.Repeat([]byte("y"), 4<<20)...)
	bigManifest = append(bigManifest, []byte(`"}}`)...)
	oci := map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}

	cases := []struct {
		name   string
		req    req
		status int
		code   string
	}{
		{"manifest digest mismatch", req{method: "PUT", path: "/v2/" + repo + "/manifests/" + sha([]byte("other")), auth: alpha, body: good, header: oci}, 400, "DIGEST_INVALID"},
		{"manifest digest malformed", req{method: "PUT", path: "/v2/" + repo + "/manifests/sha256:baddigeststring", auth: alpha, body: good, header: oci}, 400, "DIGEST_INVALID"},
		{"manifest digest algorithm unknown", req{method: "PUT", path: "/v2/" + repo + "/manifests/md5:0123456789abcdef0123456789abcdef", auth: alpha, body: good, header: oci}, 400, "DIGEST_INVALID"},
		{"manifest references a missing blob", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: missing, header: oci}, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"manifest is not JSON", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: []byte("{not json"), header: oci}, 400, "MANIFEST_INVALID"},
		{"manifest schemaVersion 1", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: bytes.Replace(good, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":1`), 1), header: oci}, 400, "MANIFEST_INVALID"},
		{"manifest with a duplicate key", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: bytes.Replace(good, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":2,"schemaVersion":2`), 1), header: oci}, 400, "MANIFEST_INVALID"},
		{"manifest with a case-variant key", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: bytes.Replace(good, []byte(`"layers":`), []byte(`"Layers":`), 1), header: oci}, 400, "MANIFEST_INVALID"},
		{"manifest media type unknown", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: bytes.Replace(good, []byte("vnd.oci.image.manifest.v1+json"), []byte("vnd.example.thing+json"), 1), header: map[string]string{"Content-Type": "application/vnd.example.thing+json"}}, 400, "MANIFEST_INVALID"},
		{"manifest media type differs from Content-Type", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: good, header: map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}}, 400, "MANIFEST_INVALID"},
		{"manifest too large", req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: bigManifest, header: oci}, 413, "MANIFEST_INVALID"},
		{"manifest tag invalid", req{method: "PUT", path: "/v2/" + repo + "/manifests/-bad", auth: alpha, body: good, header: oci}, 400, "MANIFEST_INVALID"},
		{"repository name invalid", req{method: "PUT", path: "/v2/Alpha/Bad/manifests/v1", auth: alpha, body: good, header: oci}, 400, "NAME_INVALID"},
		{"repository name with an empty component", req{method: "GET", path: "/v2/alpha//bad/tags/list"}, 400, "NAME_INVALID"},
		{"blob digest mismatch", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha([]byte("x")), auth: alpha, body: []byte("y")}, 400, "DIGEST_INVALID"},
		{"blob sha512 digest mismatch", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha512d([]byte("x")), auth: alpha, body: []byte("y")}, 400, "DIGEST_INVALID"},
		{"blob digest malformed", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=sha256:XYZ", auth: alpha, body: []byte("y")}, 400, "DIGEST_INVALID"},
		{"blob too large (declared)", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha(bigBlob), auth: alpha, body: bigBlob}, 413, "SIZE_INVALID"},
		{"blob too large (streamed)", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha(bigBlob), auth: alpha, body: bigBlob, chunked: true}, 413, "SIZE_INVALID"},
		{"chunk out of order", req{method: "PATCH", path: session, auth: alpha, body: []byte("abc"), header: map[string]string{"Content-Range": "20-22"}}, 416, "RANGE_INVALID"},
		{"chunk truncated", req{method: "PATCH", path: session, auth: alpha, body: []byte("abc"), chunked: true, header: map[string]string{"Content-Range": "10-19"}}, 400, "SIZE_INVALID"},
		{"chunk overflows the limit", req{method: "PATCH", path: session, auth: alpha, body: bigBlob, chunked: true}, 413, "SIZE_INVALID"},
		{"upload completed with a wrong digest", req{method: "PUT", path: session + "?digest=" + sha([]byte("nope")), auth: alpha, body: []byte("more")}, 400, "DIGEST_INVALID"},
		{"upload completed without a digest", req{method: "PUT", path: session, auth: alpha}, 400, "DIGEST_INVALID"},
		{"upload session unknown", req{method: "PATCH", path: "/v2/" + repo + "/blobs/uploads/0123456789abcdef0123456789abcdef", auth: alpha, body: []byte("x")}, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"upload session of another repository", req{method: "PATCH", path: strings.Replace(session, repo, "alpha/other", 1), auth: alpha, body: []byte("x")}, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"push without credentials", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha([]byte("x")), body: []byte("x")}, 401, "UNAUTHORIZED"},
		{"push with a wrong token", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha([]byte("x")), auth: "basic:cairn_0123456789abcdef_nottherealsecret", body: []byte("x")}, 401, "UNAUTHORIZED"},
		{"push with a revoked token", req{method: "POST", path: "/v2/revoked/x/blobs/uploads/?digest=" + sha([]byte("x")), auth: "basic:" + tok["revoked"], body: []byte("x")}, 401, "UNAUTHORIZED"},
		{"push with a forged registry token", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha([]byte("x")), auth: "bearer:cairnreg.eyJzdWIiOiIifQ.AAAA", body: []byte("x")}, 401, "UNAUTHORIZED"},
		{"push into another project", req{method: "PUT", path: "/v2/beta/app/manifests/v1", auth: alpha, body: good, header: oci}, 403, "DENIED"},
		{"push into a repository outside every project", req{method: "POST", path: "/v2/library/app/blobs/uploads/", auth: alpha}, 403, "DENIED"},
		{"delete in another project", req{method: "DELETE", path: "/v2/beta/app/manifests/v1", auth: alpha}, 403, "DENIED"},
		{"delete without credentials", req{method: "DELETE", path: "/v2/" + repo + "/blobs/" + sha(layer)}, 401, "UNAUTHORIZED"},
		{"delete an unknown manifest", req{method: "DELETE", path: "/v2/" + repo + "/manifests/" + sha([]byte("none")), auth: alpha}, 404, "MANIFEST_UNKNOWN"},
		{"delete an unknown blob", req{method: "DELETE", path: "/v2/" + repo + "/blobs/" + sha([]byte("none")), auth: alpha}, 404, "BLOB_UNKNOWN"},
		{"blob of another repository", req{method: "GET", path: "/v2/alpha/other/blobs/" + sha(layer)}, 404, "BLOB_UNKNOWN"},
		{"mount from a bad name", req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?mount=" + sha(layer) + "&from=UPPER", auth: alpha}, 400, "NAME_INVALID"},
		{"tag list with a bad n", req{method: "GET", path: "/v2/" + repo + "/tags/list?n=-1"}, 400, "UNSUPPORTED"},
		{"referrers of a malformed digest", req{method: "GET", path: "/v2/" + repo + "/referrers/sha256:zz"}, 400, "DIGEST_INVALID"},
		{"unsupported method", req{method: "POST", path: "/v2/" + repo + "/tags/list", auth: alpha}, 405, "UNSUPPORTED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := state(t, r)
			got := do(t, base, c.req)
			if got.status != c.status || got.code() != c.code {
				t.Fatalf("got %d %s, want %d %s: %s", got.status, got.code(), c.status, c.code, got.body)
			}
			if !bytes.Contains(got.body, []byte(`"message":"`)) || bytes.Contains(got.body, []byte(`"message":""`)) {
				t.Errorf("no message in %s", got.body)
			}
			if c.status == 401 && !strings.HasPrefix(got.header.Get("WWW-Authenticate"), `Bearer realm="`) {
				t.Errorf("401 without a Bearer challenge: %q", got.header.Get("WWW-Authenticate"))
			}
			if after := state(t, r); after != before {
				t.Errorf("the refused request changed the stored state:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// The session survived every refusal with its 10 bytes, and completes correctly.
	st := do(t, base, req{method: "GET", path: session, auth: alpha})
	if st.status != http.StatusNoContent || st.header.Get("Range") != "0-9" {
		t.Fatalf("session after the refusals: %d Range %q", st.status, st.header.Get("Range"))
	}
	fin := do(t, base, req{method: "PUT", path: session + "?digest=" + sha([]byte("0123456789abc")), auth: alpha, body: []byte("abc")})
	if fin.status != http.StatusCreated {
		t.Fatalf("completing the session: %d %s", fin.status, fin.body)
	}
	// A blob a manifest references cannot be deleted from under it.
	if p := do(t, base, req{method: "PUT", path: "/v2/" + repo + "/manifests/v1", auth: alpha, body: good, header: oci}); p.status != http.StatusCreated {
		t.Fatalf("pushing the good manifest: %d %s", p.status, p.body)
	}
	before := state(t, r)
	if d := do(t, base, req{method: "DELETE", path: "/v2/" + repo + "/blobs/" + sha(layer), auth: alpha}); d.status != 403 || d.code() != "DENIED" {
		t.Fatalf("deleting a referenced blob: %d %s", d.status, d.body)
	}
	if after := state(t, r); after != before {
		t.Errorf("refused blob delete changed the state")
	}
}

// TestAuth walks the ways OCI clients authenticate: anonymous pull, Basic with a Cairn
// token, the Bearer challenge and token endpoint, and revocation of the underlying token.
func TestAuth(t *testing.T) {
	r, tok := registry(t)
	base := r.URL
	repo := "beta/auth"
	blob := []byte("auth test blob")

	// Anonymous: the ping is challenged (so that logins check their token), pull is open,
	// push is challenged with the token endpoint.
	if p := do(t, base, req{method: "GET", path: "/v2/"}); p.status != 401 || p.header.Get("WWW-Authenticate") != fmt.Sprintf(`Bearer realm="%s/v2/token",service="cairn"`, base) {
		t.Fatalf("anonymous ping: %d %q", p.status, p.header.Get("WWW-Authenticate"))
	}
	if p := do(t, base, req{method: "GET", path: "/v2/", auth: "basic:" + tok["beta"]}); p.status != 200 {
		t.Fatalf("ping with a token: %d", p.status)
	}
	if p := do(t, base, req{method: "GET", path: "/v2/", auth: "basic:cairn_0123456789abcdef_wrong"}); p.status != 401 {
		t.Fatalf("ping with a wrong token: %d", p.status)
	}
	ch := do(t, base, req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/"})
	want := fmt.Sprintf(`Bearer realm="%s/v2/token",service="cairn",scope="repository:%s:pull,push"`, base, repo)
	if ch.status != 401 || ch.header.Get("WWW-Authenticate") != want {
		t.Fatalf("challenge: %d %q, want %q", ch.status, ch.header.Get("WWW-Authenticate"), want)
	}

	// The token endpoint: Basic credentials in, a registry token out.
	tr := do(t, base, req{method: "GET", path: "/v2/token?service=cairn&scope=repository:" + repo + ":pull,push", auth: "basic:" + tok["beta"]})
	var tb struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(tr.body, &tb); err != nil || tr.status != 200 || tb.Token == "" || tb.Token != tb.AccessToken || tb.ExpiresIn <= 0 {
		t.Fatalf("token endpoint: %d %s", tr.status, tr.body)
	}
	if strings.Contains(tb.Token, tok["beta"]) || strings.Contains(tb.Token, strings.SplitN(tok["beta"], "_", 3)[2]) {
		t.Fatal("the registry token carries the Cairn token's secret")
	}
	d := pushBlob(t, base, repo, "bearer:"+tb.Token, blob)
	if g := do(t, base, req{method: "GET", path: "/v2/" + repo + "/blobs/" + d}); g.status != 200 || !bytes.Equal(g.body, blob) {
		t.Fatalf("anonymous pull: %d", g.status)
	}
	// The same token works as Basic password and as a raw Bearer token.
	pushBlob(t, base, repo, "basic:"+tok["beta"], []byte("basic"))
	pushBlob(t, base, repo, "bearer:"+tok["beta"], []byte("bearer"))
	// The token endpoint refuses bad credentials, and hands anonymous tokens out for pulls.
	if bad := do(t, base, req{method: "GET", path: "/v2/token?service=cairn", auth: "basic:cairn_0123456789abcdef_wrong"}); bad.status != 401 || bad.code() != "UNAUTHORIZED" {
		t.Fatalf("token endpoint with a wrong token: %d %s", bad.status, bad.body)
	}
	anon := do(t, base, req{method: "GET", path: "/v2/token?service=cairn"})
	var at struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(anon.body, &at)
	if anon.status != 200 || at.Token == "" {
		t.Fatalf("anonymous token: %d %s", anon.status, anon.body)
	}
	if p := do(t, base, req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/", auth: "bearer:" + at.Token}); p.status != 401 {
		t.Fatalf("push with an anonymous token: %d %s", p.status, p.body)
	}
	if p := do(t, base, req{method: "GET", path: "/v2/", auth: "bearer:" + at.Token}); p.status != 200 {
		t.Fatalf("ping with an anonymous token: %d %s", p.status, p.body)
	}
	// Revoking the Cairn token revokes the registry tokens issued for it, at once.
	revTok, rec, err := r.DB.CreateToken(context.Background(), store.NewTokenSpec{Name: "short", Projects: []string{"beta"}})
	if err != nil {
		t.Fatal(err)
	}
	tr = do(t, base, req{method: "GET", path: "/v2/token?service=cairn", auth: "basic:" + revTok})
	_ = json.Unmarshal(tr.body, &tb)
	pushBlob(t, base, repo, "bearer:"+tb.Token, []byte("before revocation"))
	if err := r.DB.RevokeToken(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	if p := do(t, base, req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/", auth: "bearer:" + tb.Token}); p.status != 401 {
		t.Fatalf("push with the registry token of a revoked token: %d %s", p.status, p.body)
	}
	// The admin token writes anywhere.
	pushBlob(t, base, "library/anything", "basic:"+tok["admin"], []byte("admin"))
}

// TestPrivatePull checks --oci-anonymous-pull=false: every read needs a token; and
// --external-url: the token realm does not follow the request's Host.
func TestPrivatePull(t *testing.T) {
	r := testrepo.Boot(t, privateDB(t), func(c *daemon.Config) {
		c.OCIAnonymousPull = false
		c.ExternalURL = "https://registry.example"
	})
	base := r.URL
	// With --external-url the challenge sends credentials there, whatever Host the
	// request named.
	spoof, _ := http.NewRequest(http.MethodGet, base+"/v2/", nil)
	spoof.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(spoof); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="https://registry.example/v2/token",service="cairn"` {
			t.Errorf("challenge with a spoofed Host: %q", got)
		}
	}
	d := pushBlob(t, base, "p/x", "basic:"+r.AdminToken, []byte("private"))
	for _, path := range []string{"/v2/", "/v2/p/x/blobs/" + d, "/v2/p/x/tags/list"} {
		if g := do(t, base, req{method: "GET", path: path}); g.status != 401 || g.code() != "UNAUTHORIZED" || g.header.Get("WWW-Authenticate") == "" {
			t.Errorf("anonymous GET %s: %d %s", path, g.status, g.body)
		}
	}
	if g := do(t, base, req{method: "GET", path: "/v2/token?service=cairn"}); g.status != 401 {
		t.Errorf("anonymous token with anonymous pull off: %d %s", g.status, g.body)
	}
	if g := do(t, base, req{method: "GET", path: "/v2/p/x/blobs/" + d, auth: "basic:" + r.AdminToken}); g.status != 200 {
		t.Errorf("authenticated pull: %d %s", g.status, g.body)
	}
}

// privateDB is a database of its own, for a server with other settings.
func privateDB(t *testing.T) string {
	t.Helper()
	u, drop, err := testdb.Create("oci_private")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return u
}
