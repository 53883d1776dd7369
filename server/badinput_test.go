package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// dumpState renders every table and every stored blob, so a refused request can be shown
// to have changed nothing at all.
func dumpState(t *testing.T, r *testrepo.Repo) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, tbl := range []string{"repo_state", "metadata", "projects", "release_files", "blobs", "tokens", "audit_log", "attestations", "attestation_shards", "attestation_indexes", "sigstore_trusted_roots", "shards"} {
		rows, err := r.DB.Pool.Query(ctx, fmt.Sprintf(`SELECT row_to_json(x)::text FROM %s x ORDER BY row_to_json(x)::text`, tbl))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %s\n", tbl, s)
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
	}
	var files []string
	_ = filepath.WalkDir(filepath.Join(r.Dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	fmt.Fprintf(&b, "files %v\n", files)
	return b.String()
}

type badCase struct {
	name        string
	method      string
	path        string
	token       string
	contentType string
	body        []byte
	// chunked sends the body without a Content-Length.
	chunked bool
	status  int
	code    api.Code
	// detail, if set, must appear in the problem's detail.
	detail string
}

func runBadCases(t *testing.T, r *testrepo.Repo, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := dumpState(t, r)
			var body io.Reader = bytes.NewReader(c.body)
			if c.chunked {
				body = io.MultiReader(bytes.NewReader(c.body)) // hides the length: chunked
			}
			req, err := http.NewRequest(c.method, r.URL+c.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != api.MediaProblem {
				t.Errorf("content type %q, want %q", ct, api.MediaProblem)
			}
			var p api.Problem
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("problem document: %v: %s", err, raw)
			}
			if p.Code != c.code || p.Status != c.status || p.Detail == "" {
				t.Errorf("problem %+v, want code %s", p, c.code)
			}
			if c.detail != "" && !strings.Contains(p.Detail, c.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, c.detail)
			}
			checkOpenAPI(t, c.method, c.path, resp, raw)
			if after := dumpState(t, r); after != before {
				t.Errorf("stored state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	bob := testrepo.NewKey(t, tufrepo.KeyECDSAP256)
	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice, bob)
	r.CreateProject(t, r.AdminToken, "other", 1, []*testrepo.Key{mallory}, mallory)
	r.CreateProject(t, r.AdminToken, "my-lib", 1, []*testrepo.Key{mallory}, mallory)
	otherToken, _, err := r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "other-only", Projects: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	revoked, tok, err := r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "revoked", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DB.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	// demo is at version 2 with one published file.
	pub := testrepo.File{Path: "demo/1.0/demo.tgz", Content: []byte("published bytes")}
	r.PutBlob(t, r.AdminToken, pub.Content)
	exp := time.Now().Add(30 * 24 * time.Hour)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, exp, pub), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("setup upload: %d %s", resp.Status, resp.Body)
	}
	newFile := testrepo.File{Path: "demo/2.0/demo.tgz", Content: []byte("new release")}
	r.PutBlob(t, r.AdminToken, newFile.Content)
	admin := r.AdminToken

	create := func(name string, threshold int, keys []api.Key, md []byte) []byte {
		return testrepo.JSON(t, api.CreateProjectRequest{Name: name, Threshold: threshold, Keys: keys, Metadata: md})
	}
	v1 := func(k ...*testrepo.Key) []byte {
		return testrepo.Sign(t, testrepo.Role(1, exp), k...)
	}
	aliceKeys := []api.Key{alice.API()}
	badKey := alice.API()
	badKey.KeyVal.Public = "abcd"
	rsaKey := alice.API()
	rsaKey.KeyType, rsaKey.Scheme = "rsa", "rsassa-pss-sha256"

	// Project creation.
	runBadCases(t, r, []badCase{
		{name: "no token", method: "POST", path: "/api/v1/projects", body: create("new", 1, aliceKeys, v1(alice)), status: 401, code: api.CodeUnauthorized},
		{name: "bad wait", method: "POST", path: "/api/v1/projects?wait=forever", token: admin, body: create("new", 1, aliceKeys, v1(alice)), status: 400, code: api.CodeBadRequest, detail: "forever"},
		{name: "garbage token", method: "POST", path: "/api/v1/projects", token: "cairn_0123456789abcdef_nope", body: create("new", 1, aliceKeys, v1(alice)), status: 401, code: api.CodeUnauthorized},
		{name: "revoked token", method: "POST", path: "/api/v1/projects", token: revoked, body: create("new", 1, aliceKeys, v1(alice)), status: 401, code: api.CodeUnauthorized},
		{name: "token without create", method: "POST", path: "/api/v1/projects", token: otherToken, body: create("new", 1, aliceKeys, v1(alice)), status: 403, code: api.CodeForbidden},
		{name: "malformed json", method: "POST", path: "/api/v1/projects", token: admin, body: []byte(`{"name":`), status: 400, code: api.CodeMalformedJSON},
		{name: "unknown field", method: "POST", path: "/api/v1/projects", token: admin, body: []byte(`{"name":"new","owner":"me"}`), status: 400, code: api.CodeMalformedJSON, detail: "owner"},
		{name: "duplicate name field", method: "POST", path: "/api/v1/projects", token: admin, body: bytes.Replace(create("new", 1, aliceKeys, v1(alice)), []byte(`{"name":"new"`), []byte(`{"name":"new","name":"demo2"`), 1), status: 400, code: api.CodeAmbiguousJSON, detail: "duplicate key"},
		{name: "case variant field", method: "POST", path: "/api/v1/projects", token: admin, body: bytes.Replace(create("new", 1, aliceKeys, v1(alice)), []byte(`"threshold":`), []byte(`"Threshold":`), 1), status: 400, code: api.CodeAmbiguousJSON, detail: `"threshold"`},
		{name: "trailing data", method: "POST", path: "/api/v1/projects", token: admin, body: append(create("new", 1, aliceKeys, v1(alice)), []byte(` {}`)...), status: 400, code: api.CodeMalformedJSON, detail: "after"},
		{name: "oversized", method: "POST", path: "/api/v1/projects", token: admin, body: bytes.Repeat([]byte(" "), tufrepo.MaxCreateRequestSize+1), status: 413, code: api.CodeTooLarge},
		{name: "uppercase name", method: "POST", path: "/api/v1/projects", token: admin, body: create("New", 1, aliceKeys, v1(alice)), status: 400, code: api.CodeInvalidName, detail: `"new"`},
		{name: "path traversal name", method: "POST", path: "/api/v1/projects", token: admin, body: create("../etc", 1, aliceKeys, v1(alice)), status: 400, code: api.CodeInvalidName},
		{name: "reserved name", method: "POST", path: "/api/v1/projects", token: admin, body: create("snapshot", 1, aliceKeys, v1(alice)), status: 400, code: api.CodeInvalidName, detail: "reserved"},
		{name: "too long name", method: "POST", path: "/api/v1/projects", token: admin, body: create(strings.Repeat("a", 65), 1, aliceKeys, v1(alice)), status: 400, code: api.CodeInvalidName},
		{name: "no keys", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, nil, v1(alice)), status: 400, code: api.CodeInvalidKey},
		{name: "bad ed25519 key", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, []api.Key{badKey}, v1(alice)), status: 400, code: api.CodeInvalidKey},
		{name: "rsa key", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, []api.Key{rsaKey}, v1(alice)), status: 400, code: api.CodeInvalidKey, detail: "not supported"},
		{name: "duplicate key", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, []api.Key{alice.API(), alice.API()}, v1(alice)), status: 400, code: api.CodeInvalidKey, detail: "twice"},
		{name: "threshold zero", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 0, aliceKeys, v1(alice)), status: 400, code: api.CodeInvalidThreshold},
		{name: "threshold above keys", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 2, aliceKeys, v1(alice)), status: 400, code: api.CodeInvalidThreshold},
		{name: "metadata not json", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, aliceKeys, []byte("not json")), status: 400, code: api.CodeMalformedMetadata},
		{name: "metadata version 2", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, aliceKeys, testrepo.Sign(t, testrepo.Role(2, exp), alice)), status: 409, code: api.CodeVersionConflict},
		{name: "metadata expired", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, aliceKeys, testrepo.Sign(t, testrepo.Role(1, time.Now().Add(-time.Hour)), alice)), status: 422, code: api.CodeExpired},
		{name: "metadata expires too late", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, aliceKeys, testrepo.Sign(t, testrepo.Role(1, time.Now().Add(3*365*24*time.Hour)), alice)), status: 422, code: api.CodeExpiryTooFar},
		{name: "signed by another key", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, aliceKeys, v1(mallory)), status: 403, code: api.CodeKeyNotDelegated, detail: mallory.ID()},
		{name: "unsigned", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, aliceKeys, v1()), status: 422, code: api.CodeThresholdNotMet},
		{name: "existing name", method: "POST", path: "/api/v1/projects", token: admin, body: create("demo", 1, aliceKeys, v1(alice)), status: 409, code: api.CodeProjectExists},
		{name: "confusable name", method: "POST", path: "/api/v1/projects", token: admin, body: create("my_lib", 1, aliceKeys, v1(alice)), status: 409, code: api.CodeProjectExists, detail: `"my-lib"`},
		{name: "confusable name with dots", method: "POST", path: "/api/v1/projects", token: admin, body: create("my.lib", 1, aliceKeys, v1(alice)), status: 409, code: api.CodeProjectExists},
		{name: "traversal target path", method: "POST", path: "/api/v1/projects", token: admin, body: create("new", 1, aliceKeys, testrepo.Sign(t, testrepo.Role(1, exp, testrepo.File{Path: "new/../x", Content: newFile.Content}), alice)), status: 422, code: api.CodeInvalidPath},
	})

	// Project role submissions.
	next := func(v int64, files ...testrepo.File) *metadata.Metadata[metadata.TargetsType] {
		return testrepo.Role(v, exp, files...)
	}
	good := func() *metadata.Metadata[metadata.TargetsType] { return next(3, pub, newFile) }
	tampered := func() []byte {
		md := good()
		if _, err := md.Sign(alice.Signer.Signer); err != nil {
			t.Fatal(err)
		}
		md.Signed.Expires = md.Signed.Expires.Add(time.Hour) // changed after signing
		b, _ := md.ToBytes(false)
		return b
	}()
	withDelegation := good()
	withDelegation.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
	changed := testrepo.File{Path: pub.Path, Content: newFile.Content}
	missing := testrepo.File{Path: "demo/2.0/missing.tgz", Content: []byte("never uploaded")}
	wrongLen := next(3, pub, newFile)
	wrongLen.Signed.Targets[newFile.Path].Length++
	twoHashes := next(3, pub, newFile)
	twoHashes.Signed.Targets[newFile.Path].Hashes["sha512"] = make([]byte, 64)
	sub := "/api/v1/projects/demo/roles"
	js := api.MediaJSON
	runBadCases(t, r, []badCase{
		{name: "no token", method: "POST", path: sub, contentType: js, body: testrepo.Sign(t, good(), alice), status: 401, code: api.CodeUnauthorized},
		{name: "token of another project", method: "POST", path: sub, token: otherToken, contentType: js, body: testrepo.Sign(t, good(), alice), status: 403, code: api.CodeForbidden, detail: "demo"},
		{name: "revoked token", method: "POST", path: sub, token: revoked, contentType: js, body: testrepo.Sign(t, good(), alice), status: 401, code: api.CodeUnauthorized},
		{name: "unknown project", method: "POST", path: "/api/v1/projects/nope/roles", token: admin, contentType: js, body: testrepo.Sign(t, good(), alice), status: 404, code: api.CodeNotFound},
		{name: "bad wait", method: "POST", path: sub + "?wait=-1s", token: admin, contentType: js, body: testrepo.Sign(t, good(), alice), status: 400, code: api.CodeBadRequest},
		{name: "wrong content type", method: "POST", path: sub, token: admin, contentType: "text/plain", body: testrepo.Sign(t, good(), alice), status: 415, code: api.CodeUnsupported},
		{name: "oversized", method: "POST", path: sub, token: admin, contentType: js, body: bytes.Repeat([]byte(" "), tufrepo.MaxProjectRoleBytes+1), status: 413, code: api.CodeTooLarge},
		{name: "oversized chunked", method: "POST", path: sub, token: admin, contentType: js, chunked: true, body: bytes.Repeat([]byte(" "), tufrepo.MaxProjectRoleBytes+1), status: 413, code: api.CodeTooLarge},
		{name: "malformed", method: "POST", path: sub, token: admin, contentType: js, body: []byte(`{"signed":`), status: 400, code: api.CodeMalformedMetadata},
		{name: "root metadata", method: "POST", path: sub, token: admin, contentType: js, body: r.RootJSON, status: 400, code: api.CodeMalformedMetadata},
		{name: "replayed version 2", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(2, pub), alice), status: 409, code: api.CodeVersionConflict, detail: "must be 3"},
		{name: "skipped version", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(4, pub, newFile), alice), status: 409, code: api.CodeVersionConflict},
		{name: "undelegated key", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, good(), mallory), status: 403, code: api.CodeKeyNotDelegated},
		{name: "bad signature", method: "POST", path: sub, token: admin, contentType: js, body: tampered, status: 422, code: api.CodeSignatureInvalid, detail: alice.ID()},
		{name: "expired", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, testrepo.Role(3, time.Now().Add(-time.Minute), pub, newFile), alice), status: 422, code: api.CodeExpired},
		{name: "path traversal", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(3, pub, testrepo.File{Path: "demo/../../etc/passwd", Content: newFile.Content}), alice), status: 422, code: api.CodeInvalidPath},
		{name: "dot-dot version", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(3, pub, testrepo.File{Path: "demo/../passwd", Content: newFile.Content}), alice), status: 422, code: api.CodeInvalidPath},
		{name: "other project's path", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(3, pub, testrepo.File{Path: "other/1.0/x.tgz", Content: newFile.Content}), alice), status: 422, code: api.CodePathOutsideProject},
		{name: "blob missing", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(3, pub, missing), alice), status: 422, code: api.CodeBlobMissing, detail: missing.Path},
		{name: "length mismatch", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, wrongLen, alice), status: 422, code: api.CodeLengthMismatch},
		{name: "two hashes", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, twoHashes, alice), status: 422, code: api.CodeHashMismatch},
		{name: "published file changed", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(3, changed), alice), status: 409, code: api.CodeImmutablePath, detail: pub.Path},
		{name: "published file removed", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, next(3, newFile), alice), status: 409, code: api.CodeImmutablePath, detail: pub.Path},
		{name: "delegations", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, withDelegation, alice), status: 422, code: api.CodeDelegationForbidden},
		// Issue #9's parser differential: Go reads "Signed", JavaScript "signed".
		{name: "signed and Signed", method: "POST", path: sub, token: admin, contentType: js, body: twoReadings(t, testrepo.Sign(t, good(), alice), testrepo.Sign(t, next(3, pub, newFile, missing), alice)), status: 400, code: api.CodeAmbiguousJSON, detail: `"signed" and "Signed"`},
		{name: "Signed alone", method: "POST", path: sub, token: admin, contentType: js, body: bytes.Replace(testrepo.Sign(t, good(), alice), []byte(`"signed":`), []byte(`"Signed":`), 1), status: 400, code: api.CodeAmbiguousJSON, detail: `"signed"`},
		{name: "duplicate signatures key", method: "POST", path: sub, token: admin, contentType: js, body: bytes.Replace(testrepo.Sign(t, good(), alice), []byte(`{"signatures":`), []byte(`{"signatures":[],"signatures":`), 1), status: 400, code: api.CodeAmbiguousJSON, detail: "duplicate key"},
		{name: "invalid utf-8", method: "POST", path: sub, token: admin, contentType: js, body: bytes.Replace(testrepo.Sign(t, good(), alice), []byte(`"_type":`), []byte("\"x\":\"\xff\",\"_type\":"), 1), status: 400, code: api.CodeAmbiguousJSON, detail: "UTF-8"},
		{name: "threshold met plus an undelegated signature", method: "POST", path: sub, token: admin, contentType: js, body: testrepo.Sign(t, good(), alice, mallory), status: 403, code: api.CodeKeyNotDelegated, detail: mallory.ID()},
	})

	// Blob uploads.
	content := []byte("blob content")
	blob := "/api/v1/blobs/sha256:" + sha(content)
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	runBadCases(t, r, []badCase{
		{name: "no token", method: "PUT", path: blob, body: content, status: 401, code: api.CodeUnauthorized},
		{name: "revoked token", method: "PUT", path: blob, token: revoked, body: content, status: 401, code: api.CodeUnauthorized},
		{name: "not sha256", method: "PUT", path: "/api/v1/blobs/md5:abc", token: admin, body: content, status: 400, code: api.CodeBadRequest},
		{name: "uppercase hex", method: "PUT", path: "/api/v1/blobs/sha256:" + strings.ToUpper(sha(content)), token: admin, body: content, status: 400, code: api.CodeBadRequest},
		{name: "traversal digest", method: "PUT", path: "/api/v1/blobs/sha256:..%2f..%2fetc", token: admin, body: content, status: 400, code: api.CodeBadRequest},
		{name: "digest mismatch", method: "PUT", path: blob, token: admin, body: []byte("other content"), status: 400, code: api.CodeDigestMismatch},
		{name: "truncated", method: "PUT", path: blob, token: admin, body: content[:4], status: 400, code: api.CodeDigestMismatch},
		{name: "oversized", method: "PUT", path: "/api/v1/blobs/sha256:" + sha(big), token: admin, body: big, status: 413, code: api.CodeTooLarge},
		{name: "oversized chunked", method: "PUT", path: "/api/v1/blobs/sha256:" + sha(big), token: admin, chunked: true, body: big, status: 413, code: api.CodeTooLarge},
	})
}

// twoReadings combines two signed metadata files into one document that Go reads as b and
// JavaScript as a: {"signatures": a's, "signed": a's, "Signed": b's}.
func twoReadings(t *testing.T, a, b []byte) []byte {
	t.Helper()
	var ea, eb struct {
		Signatures json.RawMessage `json:"signatures"`
		Signed     json.RawMessage `json:"signed"`
	}
	if err := json.Unmarshal(a, &ea); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf(`{"signatures":%s,"signed":%s,"Signed":%s}`, ea.Signatures, ea.Signed, eb.Signed))
}
