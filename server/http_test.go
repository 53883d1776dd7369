package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

func TestMetadataAndTargetsHTTP(t *testing.T) {
	r := freshRepo(t)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	f := testrepo.File{Path: "demo/1.0/demo.tgz", Content: []byte("0123456789")}
	sum := r.PutBlob(t, r.AdminToken, f.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(24*time.Hour), f), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.Status, resp.Body)
	}
	immutable := "public, max-age=31536000, immutable"
	for _, c := range []struct {
		path   string
		status int
		cache  string
	}{
		{"/metadata/timestamp.json", 200, "public, max-age=5"},
		{"/metadata/root.json", 200, "public, max-age=5"},
		{"/metadata/1.root.json", 200, immutable},
		{"/metadata/2.root.json", 404, ""},
		{"/metadata/1.snapshot.json", 200, immutable},
		{"/metadata/1.targets.json", 200, immutable},
		{"/metadata/1.claimed.json", 200, immutable},
		{"/metadata/2.recently-claimed.json", 200, immutable},
		{"/metadata/2.demo.json", 200, immutable},
		{"/metadata/3.demo.json", 404, ""},
		{"/metadata/01.root.json", 404, ""},
		{"/metadata/0.root.json", 404, ""},
		{"/metadata/1.Demo.json", 404, ""},
		{"/metadata/1.root.json.bak", 404, ""},
		{"/metadata/..%2f1.root.json", 404, ""},
		{"/targets/demo/1.0/" + sum + ".demo.tgz", 200, immutable},
		{"/targets/demo/1.0/" + strings.Repeat("0", 64) + ".demo.tgz", 404, ""},
		{"/targets/demo/1.0/" + sum + ".other.tgz", 404, ""},
		{"/targets/demo/..%2f..%2f/" + sum + ".demo.tgz", 404, ""},
		{"/targets/demo/1.0/" + sum, 404, ""},
	} {
		resp := r.Do(t, http.MethodGet, c.path, "", "", nil)
		if resp.Status != c.status {
			t.Errorf("GET %s: %d, want %d: %s", c.path, resp.Status, c.status, resp.Body)
			continue
		}
		if c.status != 200 {
			if resp.Header.Get("Content-Type") != api.MediaProblem {
				t.Errorf("GET %s: 404 without a problem document", c.path)
			}
			continue
		}
		if got := resp.Header.Get("Cache-Control"); got != c.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", c.path, got, c.cache)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", c.path)
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, r.URL+c.path, nil)
		req.Header.Set("If-None-Match", etag)
		cond, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cond.Body.Close()
		if cond.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", c.path, cond.StatusCode)
		}
	}
	// Range requests work on targets.
	req, _ := http.NewRequest(http.MethodGet, r.URL+"/targets/demo/1.0/"+sum+".demo.tgz", nil)
	req.Header.Set("Range", "bytes=2-4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf [16]byte
	n, _ := resp.Body.Read(buf[:])
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(buf[:n]) != "234" {
		t.Errorf("range: %d %q", resp.StatusCode, buf[:n])
	}
	// The timestamp carries the snapshot's length and hash.
	var ts struct {
		Signed struct {
			Meta map[string]struct {
				Length  int64             `json:"length"`
				Hashes  map[string]string `json:"hashes"`
				Version int64             `json:"version"`
			} `json:"meta"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil).Body, &ts); err != nil {
		t.Fatal(err)
	}
	m := ts.Signed.Meta["snapshot.json"]
	snap := r.Do(t, http.MethodGet, "/metadata/"+itoa(m.Version)+".snapshot.json", "", "", nil)
	if m.Length != int64(len(snap.Body)) || m.Hashes["sha256"] != sha(snap.Body) {
		t.Errorf("timestamp meta %+v does not describe snapshot %d (%d bytes)", m, m.Version, len(snap.Body))
	}
}

func TestReadAPIAndPagination(t *testing.T) {
	r := freshRepo(t)
	alice := testrepo.NewKey(t, tufrepo.KeyECDSAP256)
	for _, n := range []string{"a1", "a2", "a3"} {
		r.CreateProject(t, r.AdminToken, n, 1, []*testrepo.Key{alice}, alice)
	}
	var page api.ProjectList
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/projects?limit=2", "", "", nil).Body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Projects) != 2 || page.Next != "a2" || page.Projects[0].Maintainers[0].KeyID != alice.ID() || page.Projects[0].Threshold != 1 {
		t.Fatalf("page 1: %+v", page)
	}
	cursor := page.Next
	page = api.ProjectList{}
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/projects?limit=2&cursor="+cursor, "", "", nil).Body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Projects) != 1 || page.Projects[0].Name != "a3" || page.Next != "" {
		t.Fatalf("page 2: %+v", page)
	}
	for _, c := range []struct {
		path   string
		status int
		code   api.Code
	}{
		{"/api/v1/projects?limit=0", 400, api.CodeBadRequest},
		{"/api/v1/projects?limit=5000", 400, api.CodeBadRequest},
		{"/api/v1/projects/nope", 404, api.CodeNotFound},
		{"/api/v1/projects/nope/releases", 404, api.CodeNotFound},
		{"/api/v1/projects/a1/releases/9.9", 404, api.CodeNotFound},
		{"/api/v1/projects/a1/roles/9", 404, api.CodeNotFound},
		{"/api/v1/projects/a1/roles/x", 400, api.CodeBadRequest},
		{"/api/v1/log?after=-1", 400, api.CodeBadRequest},
		{"/api/v1/nothing", 404, api.CodeNotFound},
	} {
		resp := r.Do(t, "GET", c.path, "", "", nil)
		if resp.Status != c.status || resp.Problem().Code != c.code {
			t.Errorf("GET %s: %d %s", c.path, resp.Status, resp.Body)
		}
	}
	var st api.SubmitResult
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/projects/a2/roles/1", "", "", nil).Body, &st); err != nil || st.Status != api.StatusPublished || st.SnapshotVersion < 2 {
		t.Fatalf("role status: %+v %v", st, err)
	}
	// The log pages chain across page boundaries.
	var all []api.LogEntry
	next := ""
	for {
		var lp api.LogPage
		path := "/api/v1/log?limit=4"
		if next != "" {
			path += "&after=" + next
		}
		if err := json.Unmarshal(r.Do(t, "GET", path, "", "", nil).Body, &lp); err != nil {
			t.Fatal(err)
		}
		all = append(all, lp.Entries...)
		if lp.Next == "" {
			break
		}
		next = lp.Next
	}
	if _, err := tufrepo.VerifyAuditChain(nil, all); err != nil || len(all) < 6+3*4 {
		t.Fatalf("log: %d entries: %v", len(all), err)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	r := freshRepo(t)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	r.Submit(t, r.AdminToken, "demo", []byte("{}")) // one refusal
	if resp := r.Do(t, "GET", "/healthz", "", "", nil); resp.Status != 200 {
		t.Fatalf("healthz: %d", resp.Status)
	}
	var h api.Health
	resp := r.Do(t, "GET", "/readyz", "", "", nil)
	if err := json.Unmarshal(resp.Body, &h); err != nil || resp.Status != 200 || h.Status != "ok" || h.Checks["database"] != "ok" || !strings.HasPrefix(h.Checks["timestamp"], "expires in") {
		t.Fatalf("readyz: %d %s", resp.Status, resp.Body)
	}
	// The publisher records its metrics just after its commit, which the upload's answer
	// may overtake: poll briefly.
	wants := []string{
		`cairn_http_requests_total{code="201",method="POST",route="/api/v1/projects"} 1`,
		`cairn_http_request_duration_seconds_bucket{method="POST",route="/api/v1/projects"`,
		`cairn_publishes_total{reason="staged",result="ok"}`,
		`cairn_publish_duration_seconds_count`,
		`cairn_uploads_total{reason="",result="accepted"} 1`,
		`cairn_uploads_total{reason="malformed_metadata",result="refused"} 1`,
		`cairn_role_expiry_seconds{role="timestamp"}`,
		`cairn_role_expiry_seconds{role="root"}`,
		`cairn_role_expiry_seconds{role="recently-claimed"}`,
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		metrics := string(r.Do(t, "GET", "/metrics", "", "", nil).Body)
		var missing []string
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %v", missing)
		}
	}
	// The published timestamp has expired (here: the head points at a timestamp version
	// whose expiry has passed, as after a day without a working publisher).
	if _, err := r.DB.Pool.Exec(t.Context(), `INSERT INTO metadata (role, version, raw, length, sha256, expires, action, snapshot_version)
		SELECT role, 99, raw, length, sha256, now() - interval '1 minute', action, snapshot_version FROM metadata WHERE role = 'timestamp' AND version = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(t.Context(), `UPDATE repo_state SET timestamp_version = 99`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp = r.Do(t, "GET", "/readyz", "", "", nil)
		if resp.Status == http.StatusServiceUnavailable && strings.Contains(string(resp.Body), "expired at") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz did not report the expired timestamp: %d %s", resp.Status, resp.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Metadata of 1 KiB or more is served gzipped to clients that accept it: the same bytes
// once decoded, its own ETag, Vary: Accept-Encoding, and nothing else changes. The head
// snapshot is compressed in the background, so it may be plain until then.
func TestMetadataGzip(t *testing.T) {
	r := freshRepo(t)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	for i := range 12 {
		r.CreateProject(t, r.AdminToken, fmt.Sprintf("gz-project-%02d", i), 1, []*testrepo.Key{alice}, alice)
	}
	get := func(path string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", r.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		// A transport that does not decode gzip itself, so the test sees the encoding.
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	var ts struct {
		Signed struct {
			Meta map[string]struct{ Version int64 } `json:"meta"`
		} `json:"signed"`
	}
	plainTS, _ := io.ReadAll(get("/metadata/timestamp.json", nil).Body)
	if err := json.Unmarshal(plainTS, &ts); err != nil {
		t.Fatal(err)
	}
	snapPath := fmt.Sprintf("/metadata/%d.snapshot.json", ts.Signed.Meta["snapshot.json"].Version)
	plain := get(snapPath, nil)
	raw, _ := io.ReadAll(plain.Body)
	if len(raw) < 1024 || plain.Header.Get("Content-Encoding") != "" || plain.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("plain snapshot: %d bytes, headers %v", len(raw), plain.Header)
	}
	var gz *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		gz = get(snapPath, map[string]string{"Accept-Encoding": "gzip, deflate"})
		if gz.Header.Get("Content-Encoding") == "gzip" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if gz.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("the snapshot was never served gzipped: %v", gz.Header)
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(decoded, raw) {
		t.Fatalf("gzipped snapshot decodes to %d bytes (%v), want the %d served plain", len(decoded), err, len(raw))
	}
	if gz.Header.Get("Etag") == plain.Header.Get("Etag") || gz.Header.Get("Vary") != "Accept-Encoding" || gz.Header.Get("Cache-Control") != plain.Header.Get("Cache-Control") {
		t.Fatalf("gzip headers %v, plain %v", gz.Header, plain.Header)
	}
	// Each representation revalidates against its own ETag.
	if resp := get(snapPath, map[string]string{"Accept-Encoding": "gzip", "If-None-Match": gz.Header.Get("Etag")}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match of the gzip ETag: %d", resp.StatusCode)
	}
	if resp := get(snapPath, map[string]string{"If-None-Match": gz.Header.Get("Etag")}); resp.StatusCode != http.StatusOK {
		t.Fatalf("the gzip ETag matched the plain representation: %d", resp.StatusCode)
	}
	// gzip refused with q=0; and small files (timestamp.json) are never gzipped.
	if resp := get(snapPath, map[string]string{"Accept-Encoding": "gzip;q=0, identity"}); resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("gzip;q=0 got %q", resp.Header.Get("Content-Encoding"))
	}
	if resp := get("/metadata/timestamp.json", map[string]string{"Accept-Encoding": "gzip"}); resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("timestamp.json served with Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	// go-tuf's updater (its HTTP client asks for gzip) still verifies everything.
	if err := newUpdater(t, r).Refresh(); err != nil {
		t.Fatalf("go-tuf through gzip: %v", err)
	}
}
