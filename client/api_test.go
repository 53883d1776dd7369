package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
)

const testSum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestAPIRequests(t *testing.T) {
	type seen struct {
		method, path, query, auth, ctype, body string
	}
	tests := []struct {
		name   string
		call   func(ctx context.Context, a *API) (any, error)
		want   seen
		status int
		answer string
		check  func(t *testing.T, got any)
	}{
		{
			name: "put blob",
			call: func(ctx context.Context, a *API) (any, error) {
				return a.PutBlob(ctx, testSum, strings.NewReader("test"), 4)
			},
			want:   seen{method: "PUT", path: "/api/v1/blobs/sha256:" + testSum, auth: "Bearer tok", ctype: "application/octet-stream", body: "test"},
			status: 201, answer: `{"digest":"sha256:` + testSum + `","size":4,"created":true}`,
			check: func(t *testing.T, got any) {
				if r := got.(api.BlobResult); !r.Created || r.Size != 4 {
					t.Errorf("result = %+v", r)
				}
			},
		},
		{
			name: "blob exists",
			call: func(ctx context.Context, a *API) (any, error) { return a.BlobExists(ctx, testSum) },
			want: seen{method: "HEAD", path: "/api/v1/blobs/sha256:" + testSum, auth: "Bearer tok"}, status: 200,
			check: func(t *testing.T, got any) {
				if !got.(bool) {
					t.Error("want true")
				}
			},
		},
		{
			name: "blob missing",
			call: func(ctx context.Context, a *API) (any, error) { return a.BlobExists(ctx, testSum) },
			want: seen{method: "HEAD", path: "/api/v1/blobs/sha256:" + testSum, auth: "Bearer tok"}, status: 404,
			check: func(t *testing.T, got any) {
				if got.(bool) {
					t.Error("want false")
				}
			},
		},
		{
			name: "create project",
			call: func(ctx context.Context, a *API) (any, error) {
				return a.CreateProject(ctx, api.CreateProjectRequest{Name: "p", Threshold: 1, Metadata: []byte("{}")}, 30*time.Second)
			},
			want:   seen{method: "POST", path: "/api/v1/projects", query: "wait=30s", auth: "Bearer tok", ctype: "application/json", body: `{"name":"p","keys":null,"threshold":1,"metadata":"e30="}`},
			status: 201, answer: `{"project":"p","role_version":1,"status":"published","snapshot_version":9}`,
			check: func(t *testing.T, got any) {
				if r := got.(api.SubmitResult); r.SnapshotVersion != 9 || r.Status != api.StatusPublished {
					t.Errorf("result = %+v", r)
				}
			},
		},
		{
			name: "submit role",
			call: func(ctx context.Context, a *API) (any, error) {
				return a.SubmitRole(ctx, "p", []byte(`{"signed":{}}`), time.Minute)
			},
			want:   seen{method: "POST", path: "/api/v1/projects/p/roles", query: "wait=1m0s", auth: "Bearer tok", ctype: "application/json", body: `{"signed":{}}`},
			status: 202, answer: `{"project":"p","role_version":2,"status":"staged"}`,
			check: func(t *testing.T, got any) {
				if r := got.(api.SubmitResult); r.Status != api.StatusStaged || r.RoleVersion != 2 {
					t.Errorf("result = %+v", r)
				}
			},
		},
		{
			name:   "role status",
			call:   func(ctx context.Context, a *API) (any, error) { return a.RoleStatus(ctx, "p", 2) },
			want:   seen{method: "GET", path: "/api/v1/projects/p/roles/2"},
			status: 200, answer: `{"project":"p","role_version":2,"status":"published"}`,
		},
		{
			name:   "list projects",
			call:   func(ctx context.Context, a *API) (any, error) { return a.ListProjects(ctx, 10, "abc") },
			want:   seen{method: "GET", path: "/api/v1/projects", query: "cursor=abc&limit=10"},
			status: 200, answer: `{"projects":[{"name":"p"}],"next":"def"}`,
			check: func(t *testing.T, got any) {
				if r := got.(api.ProjectList); len(r.Projects) != 1 || r.Next != "def" {
					t.Errorf("result = %+v", r)
				}
			},
		},
		{
			name:   "project",
			call:   func(ctx context.Context, a *API) (any, error) { return a.Project(ctx, "p") },
			want:   seen{method: "GET", path: "/api/v1/projects/p"},
			status: 200, answer: `{"name":"p"}`,
		},
		{
			name:   "releases",
			call:   func(ctx context.Context, a *API) (any, error) { return a.Releases(ctx, "p") },
			want:   seen{method: "GET", path: "/api/v1/projects/p/releases"},
			status: 200, answer: `{"project":"p","releases":[]}`,
		},
		{
			name:   "release",
			call:   func(ctx context.Context, a *API) (any, error) { return a.Release(ctx, "p", "1.0+x") },
			want:   seen{method: "GET", path: "/api/v1/projects/p/releases/1.0+x"},
			status: 200, answer: `{"project":"p","version":"1.0+x"}`,
		},
		{
			name:   "log",
			call:   func(ctx context.Context, a *API) (any, error) { return a.Log(ctx, 5, 2) },
			want:   seen{method: "GET", path: "/api/v1/log", query: "after=5&limit=2"},
			status: 200, answer: `{"entries":[]}`,
		},
		{
			name:   "metadata",
			call:   func(ctx context.Context, a *API) (any, error) { return a.Metadata(ctx, "1.root.json") },
			want:   seen{method: "GET", path: "/metadata/1.root.json"},
			status: 200, answer: `{"signed":{}}`,
			check: func(t *testing.T, got any) {
				if string(got.([]byte)) != `{"signed":{}}` {
					t.Errorf("body = %s", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got seen
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.answer)
			}))
			defer hs.Close()
			a, err := NewAPI(hs.URL+"/", WithToken("tok"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := tt.call(ctx(t), a)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("request = %+v\nwant      %+v", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, res)
			}
		})
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		code   api.Code
		detail string
	}{
		{"problem document", 409, api.MediaProblem, `{"type":"x","title":"t","status":409,"detail":"project p is at role version 3","code":"version_conflict"}`, api.CodeVersionConflict, "project p is at role version 3"},
		{"plain proxy error", 502, "text/html", "<html>bad gateway</html>", api.CodeUnavailable, "502 Bad Gateway"},
		{"plain not found", 404, "text/plain", "", api.CodeNotFound, "404 Not Found"},
		{"unauthorized", 401, "text/plain", "no", api.CodeUnauthorized, "401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer hs.Close()
			a, _ := NewAPI(hs.URL, WithToken("tok"))
			_, err := a.SubmitRole(ctx(t), "p", []byte("{}"), 0)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tt.code || !strings.Contains(ae.Detail, tt.detail) {
				t.Fatalf("err = %v, want code %s with %q", err, tt.code, tt.detail)
			}
			if !strings.Contains(err.Error(), `project "p"`) {
				t.Errorf("err %q does not say what was being done", err)
			}
		})
	}
}

func TestAPIWritesNeedToken(t *testing.T) {
	a, _ := NewAPI("http://127.0.0.1:1")
	_, err := a.SubmitRole(ctx(t), "p", []byte("{}"), 0)
	if Classify(err) != ExitMalformed || !strings.Contains(err.Error(), "CAIRN_TOKEN") {
		t.Fatalf("err = %v, want a usage error naming CAIRN_TOKEN", err)
	}
}

func TestNewAPIValidatesURL(t *testing.T) {
	for _, u := range []string{"", "example.com", "ftp://x", "http://u:p@x", "http://x/?q=1"} {
		if _, err := NewAPI(u); api.CodeOf(err) != api.CodeBadRequest {
			t.Errorf("NewAPI(%q) err = %v, want bad_request", u, err)
		}
	}
	a, err := NewAPI("https://cairn.example/base/")
	if err != nil || a.Server() != "https://cairn.example/base" || a.endpoint(nil, "api", "v1", "projects", "a b") != "https://cairn.example/base/api/v1/projects/a%20b" {
		t.Fatalf("NewAPI = %v, %v", a, err)
	}
}

func TestWaitPublished(t *testing.T) {
	f := newFixture(t, "widget", false)
	f.srv.SetStage(true)
	sum := f.srv.PutBlob([]byte("abc"))
	next, err := NextProjectRole(f.role, "widget", "1.0", []api.File{{Name: "a", Length: 3, SHA256: sum}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := SignRole(next, f.key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewAPI(f.srv.URL, WithToken(f.srv.Token))
	res, err := a.SubmitRole(ctx(t), "widget", raw, time.Second)
	if err != nil || res.Status != api.StatusStaged {
		t.Fatalf("submit = %+v, %v; want staged", res, err)
	}
	res, err = a.WaitPublished(ctx(t), "widget", res.RoleVersion, 10*time.Millisecond)
	if err != nil || res.Status != api.StatusPublished || res.SnapshotVersion == 0 {
		t.Fatalf("wait = %+v, %v", res, err)
	}
}

func TestVerifyLog(t *testing.T) {
	f := newFixture(t, "widget", false, release{"1.0", map[string]string{"a": "a"}}, release{"2.0", map[string]string{"b": "b"}})
	a, _ := NewAPI(f.srv.URL)
	sum, err := a.VerifyLog(ctx(t), 3) // small pages: the chain must carry across pages
	if err != nil {
		t.Fatal(err)
	}
	if sum.Entries < 10 || sum.FirstSeq != 1 || len(sum.Head) != 64 {
		t.Fatalf("summary = %+v", sum)
	}

	f.srv.RewriteLog(func(es []api.LogEntry) []api.LogEntry {
		es[4].Version = 99 // rewrite history without fixing the chain
		return es
	})
	_, err = a.VerifyLog(ctx(t), 3)
	if Classify(err) != ExitHashMismatch || !strings.Contains(err.Error(), "entry 5") {
		t.Fatalf("tampered log: %v (exit %d)", err, Classify(err))
	}

	f.srv.RewriteLog(func(es []api.LogEntry) []api.LogEntry { return append(es[:3:3], es[4:]...) })
	if _, err := a.VerifyLog(ctx(t), 100); Classify(err) != ExitHashMismatch {
		t.Fatalf("log with a removed entry: %v", err)
	}
}

// A role version answered 503 was not stored: SubmitRole sends the same bytes again after
// the server's Retry-After, a bounded number of times; other refusals are final at once.
func TestSubmitRoleRetriesNotStored(t *testing.T) {
	const sent = `{"signed":{"version":2},"signatures":[]}`
	tests := []struct {
		name      string
		answers   []int // status of each attempt
		wantCalls int
		wantCode  api.Code
	}{
		{"stored on the second attempt", []int{503, 201}, 2, ""},
		{"not stored three times", []int{503, 503, 503, 201}, 3, api.CodeUnavailable},
		{"conflict is final", []int{409}, 1, api.CodeVersionConflict},
		// The first attempt's 503 hid a commit that happened: the server holds our bytes.
		{"stored by the attempt answered 503", []int{503, 409}, 2, ""},
		// Someone else's version 2 won: the stored bytes differ.
		{"another version won after a 503", []int{503, 409}, 2, api.CodeVersionConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var bodies []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodGet && r.URL.Path == "/metadata/2.demo.json":
					if tc.name == "stored by the attempt answered 503" {
						_, _ = io.WriteString(w, sent)
					} else {
						_, _ = io.WriteString(w, `{"signed":{"version":2,"_type":"targets"},"signatures":[]}`)
					}
					return
				case r.Method == http.MethodGet && r.URL.Path == "/api/v1/projects/demo/roles/2":
					_, _ = io.WriteString(w, `{"project":"demo","role_version":2,"status":"published","snapshot_version":7}`)
					return
				}
				b, _ := io.ReadAll(r.Body)
				bodies = append(bodies, string(b))
				st := tc.answers[len(bodies)-1]
				switch st {
				case 201:
					w.WriteHeader(201)
					_, _ = io.WriteString(w, `{"project":"demo","role_version":2,"status":"published","snapshot_version":7}`)
				case 503:
					w.Header().Set("Content-Type", api.MediaProblem)
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(503)
					_, _ = io.WriteString(w, `{"status":503,"code":"unavailable","title":"Service Unavailable","detail":"role version 2 of \"demo\" was not stored"}`)
				case 409:
					w.Header().Set("Content-Type", api.MediaProblem)
					w.WriteHeader(409)
					_, _ = io.WriteString(w, `{"status":409,"code":"version_conflict","title":"Conflict","detail":"project \"demo\" is at role version 2"}`)
				}
			}))
			defer srv.Close()
			a, err := NewAPI(srv.URL, WithToken("tok"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.SubmitRole(context.Background(), "demo", []byte(sent), 10*time.Second)
			if len(bodies) != tc.wantCalls {
				t.Fatalf("%d requests, want %d", len(bodies), tc.wantCalls)
			}
			for _, b := range bodies {
				if b != sent {
					t.Fatalf("a retry sent %q, not the same bytes", b)
				}
			}
			if (tc.wantCode == "" && (err != nil || res.Status != api.StatusPublished)) || (tc.wantCode != "" && api.CodeOf(err) != tc.wantCode) {
				t.Fatalf("SubmitRole: %+v, %v (code %q, want %q)", res, err, api.CodeOf(err), tc.wantCode)
			}
		})
	}
}
