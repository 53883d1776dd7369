package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// An upload is validated against the project's published files, which cairnd remembers
// from the publish that stored the previous version instead of reading them all again.
// Each step is table-driven on what the remembered files must say: a published file may
// not be dropped or changed, and a role version whose bytes changed in the database (as
// after a restore of a backup) is read again rather than taken from memory.
func TestUploadsAreValidatedAgainstTheRememberedFiles(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "remember", 1, []*testrepo.Key{alice}, alice)
	exp := time.Now().Add(30 * 24 * time.Hour)
	file := func(v string) testrepo.File {
		f := testrepo.File{Path: "remember/" + v + "/remember.tgz", Content: []byte("release " + v)}
		r.PutBlob(t, r.AdminToken, f.Content)
		return f
	}
	a, b, c := file("1.0"), file("2.0"), file("3.0")
	never := testrepo.File{Path: "remember/4.0/remember.tgz", Content: []byte("never uploaded")}
	changed := testrepo.File{Path: a.Path, Content: []byte("other bytes")}
	r.PutBlob(t, r.AdminToken, changed.Content)

	steps := []struct {
		name    string
		before  string // SQL run first
		version int64
		files   []testrepo.File
		status  int
		code    api.Code
	}{
		{name: "first file", version: 2, files: []testrepo.File{a}, status: http.StatusCreated},
		{name: "second file", version: 3, files: []testrepo.File{a, b}, status: http.StatusCreated},
		{name: "drops a published file", version: 4, files: []testrepo.File{a}, status: http.StatusConflict, code: api.CodeImmutablePath},
		{name: "changes a published file", version: 4, files: []testrepo.File{changed, b}, status: http.StatusConflict, code: api.CodeImmutablePath},
		{name: "drops the one file", version: 4, files: []testrepo.File{b}, status: http.StatusConflict, code: api.CodeImmutablePath},
		// The blobs of new paths are looked up with the project's state.
		{name: "a blob not uploaded", version: 4, files: []testrepo.File{a, b, never}, status: http.StatusUnprocessableEntity, code: api.CodeBlobMissing},
		{
			// Version 3 now holds other bytes and no longer lists b: what is remembered for
			// version 3 must not be used, so b is a new file again (its blob was not
			// looked up with the state, since memory said b was published: validation
			// asks for it), and c is new.
			name: "version 3 replaced in the database",
			before: `UPDATE metadata SET sha256 = sha256('restored'::bytea) WHERE role = 'remember' AND version = 3;
				DELETE FROM release_files WHERE path = 'remember/2.0/remember.tgz'`,
			version: 4, files: []testrepo.File{a, b, c}, status: http.StatusCreated,
		},
		{name: "after the replacement", version: 5, files: []testrepo.File{a, c}, status: http.StatusConflict, code: api.CodeImmutablePath},
		{name: "keeps them all", version: 5, files: []testrepo.File{a, b, c}, status: http.StatusCreated},
	}
	for _, s := range steps {
		if s.before != "" {
			if _, err := r.DB.Pool.Exec(ctx, s.before); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		raw := testrepo.Sign(t, testrepo.Role(s.version, exp, s.files...), alice)
		resp := r.Do(t, http.MethodPost, "/api/v1/projects/remember/roles?wait=30s", r.AdminToken, api.MediaJSON, raw)
		if resp.Status != s.status {
			t.Fatalf("%s: %d %s, want %d", s.name, resp.Status, resp.Body, s.status)
		}
		if s.code != "" && resp.Problem().Code != s.code {
			t.Fatalf("%s: %s, want %s", s.name, resp.Body, s.code)
		}
	}
}
