package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

// TestBlobPutAnswers: a blob PUT answers 201 when it records a new blob and 200 when the
// blob was already recorded, whichever of its row and its file existed before, and leaves
// both in place afterwards.
func TestBlobPutAnswers(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	put := func(content []byte) (int, api.BlobResult) {
		t.Helper()
		sum := sha256.Sum256(content)
		resp := r.Do(t, http.MethodPut, "/api/v1/blobs/sha256:"+hex.EncodeToString(sum[:]), r.AdminToken, "application/octet-stream", content)
		var res api.BlobResult
		if err := json.Unmarshal(resp.Body, &res); err != nil {
			t.Fatalf("PUT: %d %s", resp.Status, resp.Body)
		}
		return resp.Status, res
	}
	file := func(content []byte) string {
		sum := sha256.Sum256(content)
		h := hex.EncodeToString(sum[:])
		return filepath.Join(r.Config.BlobDir, "sha256", h[:2], h)
	}
	check := func(content []byte) {
		t.Helper()
		if b, err := os.ReadFile(file(content)); err != nil || string(b) != string(content) {
			t.Fatalf("blob file: %q, %v", b, err)
		}
		sum := sha256.Sum256(content)
		if size, ok, err := r.DB.BlobSize(ctx, hex.EncodeToString(sum[:])); err != nil || !ok || size != int64(len(content)) {
			t.Fatalf("blob row: %d %v %v", size, ok, err)
		}
	}

	content := []byte("a release file")
	if status, res := put(content); status != http.StatusCreated || !res.Created || res.Size != int64(len(content)) {
		t.Fatalf("first PUT: %d %+v, want 201 created", status, res)
	}
	check(content)
	if status, res := put(content); status != http.StatusOK || res.Created || res.Size != int64(len(content)) {
		t.Fatalf("second PUT: %d %+v, want 200", status, res)
	}
	check(content)

	// The row without its file (a lost file): written again, 200 (the row is not new).
	if err := os.Remove(file(content)); err != nil {
		t.Fatal(err)
	}
	if status, res := put(content); status != http.StatusOK || res.Created {
		t.Fatalf("PUT after the file was lost: %d %+v, want 200", status, res)
	}
	check(content)

	// The file without its row (an upload that died between the two): recorded, 201.
	sum := sha256.Sum256(content)
	if _, err := r.DB.Pool.Exec(ctx, `DELETE FROM blobs WHERE sha256 = $1`, sum[:]); err != nil {
		t.Fatal(err)
	}
	if status, res := put(content); status != http.StatusCreated || !res.Created {
		t.Fatalf("PUT after the row was lost: %d %+v, want 201 created", status, res)
	}
	check(content)
}
