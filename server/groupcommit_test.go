package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// Uploads reach the publisher's batch (group commit). Twelve uploads of the same next
// version of one project, each with its own file, race: exactly one is published, the
// others are refused with version_conflict and leave nothing behind. Uploads of different
// projects that arrive together are published together, each answered 201 only once its
// version is in a snapshot this replica serves.
func TestGroupCommitOrderingAndBatches(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "race", 1, []*testrepo.Key{alice}, alice)
	exp := time.Now().Add(30 * 24 * time.Hour)

	const racers = 12
	statuses := make([]int, racers)
	bodies := make([][]byte, racers)
	var wg sync.WaitGroup
	for i := range racers {
		f := testrepo.File{Path: fmt.Sprintf("race/1.%d/race.tgz", i), Content: []byte(fmt.Sprintf("racer %d", i))}
		r.PutBlob(t, r.AdminToken, f.Content)
		raw := testrepo.Sign(t, testrepo.Role(2, exp, f), alice)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := r.Do(t, http.MethodPost, "/api/v1/projects/race/roles?wait=30s", r.AdminToken, api.MediaJSON, raw)
			statuses[i], bodies[i] = resp.Status, resp.Body
		}()
	}
	wg.Wait()
	winners := 0
	for i, st := range statuses {
		switch st {
		case http.StatusCreated:
			winners++
		case http.StatusConflict:
			var p api.Problem
			if err := json.Unmarshal(bodies[i], &p); err != nil || p.Code != api.CodeVersionConflict {
				t.Errorf("racer %d: %d %s", i, st, bodies[i])
			}
		default:
			t.Errorf("racer %d: %d %s", i, st, bodies[i])
		}
	}
	if winners != 1 {
		t.Fatalf("%d racers won, want exactly 1", winners)
	}
	var files, versions int
	if err := r.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM release_files WHERE project = 'race'`).Scan(&files); err != nil {
		t.Fatal(err)
	}
	if err := r.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM metadata WHERE role = 'race'`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if files != 1 || versions != 2 {
		t.Fatalf("after the race: %d release files and %d role versions, want 1 and 2", files, versions)
	}

	// Many projects at once: one publish (or a few) carries them all.
	const n = 16
	for i := range n {
		r.CreateProject(t, r.AdminToken, fmt.Sprintf("batch-%02d", i), 1, []*testrepo.Key{alice}, alice)
	}
	var before int64
	if err := r.DB.Pool.QueryRow(ctx, `SELECT snapshot_version FROM repo_state`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	snaps := make([]int64, n)
	for i := range n {
		name := fmt.Sprintf("batch-%02d", i)
		f := testrepo.File{Path: name + "/1.0/" + name + ".tgz", Content: []byte("batch " + name)}
		r.PutBlob(t, r.AdminToken, f.Content)
		raw := testrepo.Sign(t, testrepo.Role(2, exp, f), alice)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := r.Do(t, http.MethodPost, "/api/v1/projects/"+name+"/roles?wait=30s", r.AdminToken, api.MediaJSON, raw)
			var res api.SubmitResult
			if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusCreated || res.Status != api.StatusPublished {
				t.Errorf("%s: %d %s", name, resp.Status, resp.Body)
			}
			snaps[i] = res.SnapshotVersion
			// Published means published: this replica serves that snapshot already.
			var served struct {
				Signed struct {
					Meta map[string]struct{ Version int64 } `json:"meta"`
				} `json:"signed"`
			}
			if err := json.Unmarshal(r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil).Body, &served); err != nil || served.Signed.Meta["snapshot.json"].Version < res.SnapshotVersion {
				t.Errorf("%s: published in snapshot %d, but the replica serves %d", name, res.SnapshotVersion, served.Signed.Meta["snapshot.json"].Version)
			}
		}()
	}
	wg.Wait()
	distinct := map[int64]bool{}
	for _, s := range snaps {
		distinct[s] = true
	}
	if len(distinct) >= n {
		t.Errorf("%d uploads took %d publishes: no batching", n, len(distinct))
	}
	t.Logf("%d uploads published in %d snapshots", n, len(distinct))
}

// Token records are cached by every replica, and a revocation (here straight in the
// database, as `cairnd token revoke` from another machine does) reaches the cache through
// LISTEN/NOTIFY: the revoked token is refused within moments, not after the cache's TTL.
func TestRevokedTokenIsForgottenAtOnce(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	tok, rec, err := r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "soon-revoked", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp := r.Do(t, http.MethodGet, "/api/v1/admin/claims", tok, "", nil); resp.Status != http.StatusOK {
		t.Fatalf("the fresh token: %d %s", resp.Status, resp.Body)
	}
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE tokens SET revoked_at = now() WHERE id = $1`, rec.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := r.Do(t, http.MethodGet, "/api/v1/admin/claims", tok, "", nil)
		if resp.Status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked token still works after 5 s: %d", resp.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
