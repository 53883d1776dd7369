package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/server"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
	"gopkg.in/yaml.v3"
)

// These tests keep api/openapi.yaml honest against the router and the handlers. They use
// a server without a database (server.New does not touch it) and only send requests that
// are answered before the database would be reached.

type specNode = map[string]any

func loadOpenAPI(t *testing.T) specNode {
	t.Helper()
	raw, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc specNode
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("api/openapi.yaml does not parse: %v", err)
	}
	return doc
}

var openAPIDoc = sync.OnceValues(func() (specNode, error) {
	raw, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		return nil, err
	}
	var doc specNode
	return doc, yaml.Unmarshal(raw, &doc)
})

// checkOpenAPI checks a live answer (to a request with any server, with or without a
// database) against api/openapi.yaml: its status is documented for the operation, and a
// problem document carries a code that the operation lists in x-error-codes. Tests that
// exercise handlers can call it on every answer to keep the document's error lists honest.
func checkOpenAPI(t *testing.T, method, path string, res *http.Response, body []byte) {
	t.Helper()
	doc, err := openAPIDoc()
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	path, _, _ = strings.Cut(path, "?")
	checkAnswer(t, doc, method, path, res, body)
}

func dbLessServer() *server.Server {
	return server.New(server.DefaultConfig(), nil, nil, tufrepo.Signers{}, slog.New(slog.DiscardHandler), time.Now)
}

var specMethods = []string{"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}

// chiParamRE matches a chi path parameter, with an optional regexp ("{id:[0-9]+}").
var chiParamRE = regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)

// TestOpenAPIRoutes checks that the router and the document list the same paths and
// methods. A path that chi serves for every method (r.Handle) must carry x-any-method.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	routes, ok := dbLessServer().Handler().(chi.Routes)
	if !ok {
		t.Fatal("the server's handler is not a chi router")
	}
	registered := map[string]map[string]bool{}
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = chiParamRE.ReplaceAllString(route, "{$1}")
		// /v2 is the OCI Distribution API: its contract is the distribution spec, checked by oci's conformance test.
		if route == "/v2" || strings.HasPrefix(route, "/v2/") {
			return nil
		}
		if registered[route] == nil {
			registered[route] = map[string]bool{}
		}
		registered[route][method] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(registered) == 0 {
		t.Fatal("chi.Walk found no routes")
	}

	paths, _ := doc["paths"].(specNode)
	for _, route := range slices.Sorted(maps.Keys(registered)) {
		methods := registered[route]
		item, ok := paths[route].(specNode)
		if !ok {
			t.Errorf("route %s (%v) is not in api/openapi.yaml", route, slices.Sorted(maps.Keys(methods)))
			continue
		}
		anyMethod := true
		for _, m := range specMethods {
			anyMethod = anyMethod && methods[m]
		}
		if anyMethod {
			if item["x-any-method"] != true {
				t.Errorf("route %s answers every method: mark it x-any-method: true in api/openapi.yaml (or register only its methods)", route)
			}
			if item["get"] == nil {
				t.Errorf("route %s answers every method but documents no GET", route)
			}
			continue
		}
		if item["x-any-method"] != nil {
			t.Errorf("path %s has x-any-method, but the router serves it only for %v", route, slices.Sorted(maps.Keys(methods)))
		}
		for _, m := range specMethods {
			_, inSpec := item[strings.ToLower(m)]
			switch {
			case methods[m] && !inSpec:
				t.Errorf("route %s %s is registered but not in api/openapi.yaml", m, route)
			case !methods[m] && inSpec:
				t.Errorf("api/openapi.yaml documents %s %s, which the router does not serve", m, route)
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		if registered[p] == nil {
			t.Errorf("api/openapi.yaml documents path %s, which the router does not serve", p)
		}
	}
}

// specOp finds the operation of the document that serves method and path.
func specOp(t *testing.T, doc specNode, method, path string) (string, specNode) {
	t.Helper()
	paths := doc["paths"].(specNode)
	for _, tmpl := range slices.Sorted(maps.Keys(paths)) {
		segs := strings.Split(tmpl, "/")
		for i, seg := range segs {
			if chiParamRE.MatchString(seg) {
				segs[i] = `[^/]+`
			} else {
				segs[i] = regexp.QuoteMeta(seg)
			}
		}
		if !regexp.MustCompile("^" + strings.Join(segs, "/") + "$").MatchString(path) {
			continue
		}
		item := paths[tmpl].(specNode)
		if op, ok := item[strings.ToLower(method)].(specNode); ok {
			return tmpl, op
		}
		if item["x-any-method"] == true {
			if op, ok := item["get"].(specNode); ok {
				return tmpl, op
			}
		}
	}
	return "", nil
}

func specRef(doc specNode, n any) specNode {
	m, _ := n.(specNode)
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = doc
		for _, k := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			c, _ := cur.(specNode)
			cur = c[k]
		}
		m, _ = cur.(specNode)
	}
	return m
}

func listOf(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// checkAnswer checks a live response against the operation that documents it: the status
// is documented; a problem document lists a code that the operation declares, with the
// registered status, and has exactly the Problem schema's fields; a JSON body has the
// fields of its schema.
func checkAnswer(t *testing.T, doc specNode, method, path string, res *http.Response, body []byte) {
	t.Helper()
	where := method + " " + path
	tmpl, op := specOp(t, doc, method, path)
	if op == nil {
		t.Errorf("%s: no operation in api/openapi.yaml serves it", where)
		return
	}
	status := strconv.Itoa(res.StatusCode)
	resp := specRef(doc, op["responses"].(specNode)[status])
	if resp == nil {
		t.Errorf("%s answered %s, which %s %s does not document", where, status, method, tmpl)
		return
	}
	ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if method == http.MethodHead {
		return // net/http drops the body of HEAD answers
	}
	content, _ := resp["content"].(specNode)
	if _, ok := content[ct]; !ok {
		t.Errorf("%s: answered %s with Content-Type %q; the document has %v", where, status, ct, slices.Sorted(maps.Keys(content)))
		return
	}
	if ct == api.MediaProblem {
		var p api.Problem
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("%s: problem document does not parse: %v", where, err)
			return
		}
		if !slices.Contains(listOf(op["x-error-codes"]), string(p.Code)) {
			t.Errorf("%s answered code %q, which is not in the x-error-codes of %s %s", where, p.Code, method, tmpl)
		}
		if p.Status != res.StatusCode || p.Code.Status() != res.StatusCode {
			t.Errorf("%s: status %d, problem status %d, registered status of %q %d", where, res.StatusCode, p.Status, p.Code, p.Code.Status())
		}
	}
	if strings.HasSuffix(ct, "json") {
		schema := specRef(doc, content[ct].(specNode)["schema"])
		checkJSONFields(t, where, schema, body)
	}
}

func checkJSONFields(t *testing.T, where string, schema specNode, body []byte) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Errorf("%s: body is not a JSON object: %v", where, err)
		return
	}
	props, _ := schema["properties"].(specNode)
	for k := range obj {
		if _, ok := props[k]; !ok {
			t.Errorf("%s: answered field %q, which the schema does not have", where, k)
		}
	}
	for _, k := range listOf(schema["required"]) {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s: required field %q is missing from the answer", where, k)
		}
	}
}

// TestOpenAPIAnswers sends requests that the server answers without its database and
// checks each answer against the document.
func TestOpenAPIAnswers(t *testing.T) {
	h := dbLessServer().Handler()
	zero := strings.Repeat("0", 64)
	type req struct {
		method, path, auth string
		status             int
		code               api.Code
	}
	reqs := []req{
		{method: "GET", path: "/healthz", status: 200},
		{method: "GET", path: "/metrics", status: 200},
		{method: "GET", path: "/metadata/timestamp.json", status: 503, code: api.CodeNotBootstrapped},
		{method: "GET", path: "/metadata/2.root.json", status: 503, code: api.CodeNotBootstrapped},
		{method: "HEAD", path: "/metadata/root.json", status: 503},
		{method: "GET", path: "/targets/cairn/1.0.0/nothash.cairn.tar.gz", status: 404, code: api.CodeNotFound},
		{method: "HEAD", path: "/targets/cairn/1.0.0/" + zero + ".-bad", status: 404},
		{method: "PUT", path: "/api/v1/blobs/sha256:" + zero, status: 401, code: api.CodeUnauthorized},
		{method: "PUT", path: "/api/v1/blobs/sha256:" + zero, auth: "Basic eDp5", status: 401, code: api.CodeUnauthorized},
		{method: "PUT", path: "/api/v1/blobs/sha256:" + zero, auth: "Bearer not-a-cairn-token", status: 401, code: api.CodeUnauthorized},
		{method: "HEAD", path: "/api/v1/blobs/md5:abc", status: 400},
		{method: "GET", path: "/api/v1/projects?limit=0", status: 400, code: api.CodeBadRequest},
		{method: "GET", path: "/api/v1/projects?limit=1001", status: 400, code: api.CodeBadRequest},
		{method: "POST", path: "/api/v1/projects", status: 401, code: api.CodeUnauthorized},
		{method: "POST", path: "/api/v1/projects/cairn/roles", status: 401, code: api.CodeUnauthorized},
		{method: "GET", path: "/api/v1/projects/cairn/roles/zero", status: 400, code: api.CodeBadRequest},
		{method: "GET", path: "/api/v1/projects/cairn/roles/0", status: 400, code: api.CodeBadRequest},
		{method: "GET", path: "/api/v1/log?limit=x", status: 400, code: api.CodeBadRequest},
		{method: "GET", path: "/api/v1/log?after=-1", status: 400, code: api.CodeBadRequest},
	}
	for _, rq := range reqs {
		t.Run(rq.method+" "+rq.path, func(t *testing.T) {
			r := httptest.NewRequest(rq.method, rq.path, strings.NewReader("{}"))
			if rq.auth != "" {
				r.Header.Set("Authorization", rq.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != rq.status {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, rq.status, body)
			}
			if rq.code != "" {
				var p api.Problem
				if err := json.Unmarshal(body, &p); err != nil || p.Code != rq.code {
					t.Fatalf("want code %q, got %s", rq.code, body)
				}
			}
			checkOpenAPI(t, rq.method, r.URL.Path, res, body)
		})
	}
}

// TestOpenAPISecuredOperations sends every operation that the document says needs a
// bearer token without one, and expects unauthorized.
func TestOpenAPISecuredOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	h := dbLessServer().Handler()
	paths := doc["paths"].(specNode)
	n := 0
	for _, tmpl := range slices.Sorted(maps.Keys(paths)) {
		for m, op := range paths[tmpl].(specNode) {
			op, ok := op.(specNode)
			if !ok || !slices.Contains(specMethods, strings.ToUpper(m)) {
				continue
			}
			sec, _ := op["security"].([]any)
			if len(sec) == 0 {
				continue
			}
			n++
			path := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(tmpl, "x")
			r := httptest.NewRequest(strings.ToUpper(m), path, strings.NewReader("{}"))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var p api.Problem
			_ = json.Unmarshal(w.Body.Bytes(), &p)
			if w.Code != http.StatusUnauthorized || p.Code != api.CodeUnauthorized {
				t.Errorf("%s %s without a token: %d %s, want 401 unauthorized", strings.ToUpper(m), path, w.Code, w.Body.Bytes())
			}
		}
	}
	if n == 0 {
		t.Error("api/openapi.yaml has no operation that needs a token")
	}
}

// TestOpenAPIUnroutedAnswers checks the answers of the router's fallbacks, which the
// document's info.description promises: 404 not_found for unknown paths and 400
// bad_request for a method that a path does not support.
func TestOpenAPIUnroutedAnswers(t *testing.T) {
	doc := loadOpenAPI(t)
	desc, _ := doc["info"].(specNode)["description"].(string)
	h := dbLessServer().Handler()
	for _, c := range []struct {
		method, path, promise string
		code                  api.Code
	}{
		{"GET", "/no/such/path", "Any path that no route serves answers 404 `not_found`", api.CodeNotFound},
		{"DELETE", "/api/v1/projects", "A method that a path does not support answers 405 `method_not_allowed`", api.CodeMethodNotAllowed},
	} {
		if !strings.Contains(strings.Join(strings.Fields(desc), " "), c.promise) {
			t.Errorf("info.description no longer says %q: update this test with it", c.promise)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		var p api.Problem
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != c.code.Status() || p.Code != c.code || w.Header().Get("Content-Type") != api.MediaProblem {
			t.Errorf("%s %s: %d %s %s, want %d %s as %s", c.method, c.path, w.Code, w.Header().Get("Content-Type"), w.Body.Bytes(), c.code.Status(), c.code, api.MediaProblem)
		}
	}
}
