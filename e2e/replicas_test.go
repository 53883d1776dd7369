package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// TestReplicasShareOnePublisherChain runs two replicas on one database and uploads to both
// at once: every upload is published exactly once, snapshot and timestamp versions never
// fork, the audit chain verifies, and a client of either replica sees every release.
func TestReplicasShareOnePublisherChain(t *testing.T) {
	u, drop, err := testdb.Create("e2e_replicas")
	if err != nil {
		t.Fatal(err)
	}
	a := testrepo.Boot(t, u, nil)
	b := testrepo.Boot(t, u, func(c *daemon.Config) { c.DataDir = a.Dir })
	t.Cleanup(drop)
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	const projects = 16
	var wg sync.WaitGroup
	errs := make(chan error, projects)
	for i := range projects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a
			if i%2 == 1 {
				r = b
			}
			name := fmt.Sprintf("p%02d", i)
			r.CreateProject(t, r.AdminToken, name, 1, []*testrepo.Key{key}, key)
			f := testrepo.File{Path: name + "/1.0/" + name + ".tgz", Content: []byte("content of " + name)}
			r.PutBlob(t, r.AdminToken, f.Content)
			resp := r.Submit(t, r.AdminToken, name, testrepo.Sign(t, testrepo.Role(2, time.Now().Add(24*time.Hour), f), key))
			var res api.SubmitResult
			if resp.Status != http.StatusCreated || json.Unmarshal(resp.Body, &res) != nil || res.Status != api.StatusPublished {
				errs <- fmt.Errorf("%s: %d %s", name, resp.Status, resp.Body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The audit chain is one unbroken chain, every snapshot version appears once.
	var entries []api.LogEntry
	for after := int64(0); ; {
		page, err := a.DB.AuditPage(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		entries = append(entries, page...)
		after = page[len(page)-1].Seq
	}
	if _, err := tufrepo.VerifyAuditChain(nil, entries); err != nil {
		t.Fatal(err)
	}
	snaps := map[int64]int{}
	accepted := 0
	for _, e := range entries {
		if e.Role == tufrepo.RoleSnapshot {
			snaps[e.Version]++
		}
		if e.Action == api.ActionAccepted && e.Role != tufrepo.RoleRoot && e.Role != tufrepo.RoleTargets && e.Role != tufrepo.RoleClaimed {
			accepted++
		}
	}
	for v, n := range snaps {
		if n != 1 {
			t.Errorf("snapshot version %d signed %d times", v, n)
		}
	}
	for v := int64(1); v <= int64(len(snaps)); v++ {
		if snaps[v] != 1 {
			t.Errorf("snapshot version %d missing from the log", v)
		}
	}
	if accepted != 2*projects {
		t.Errorf("%d project role versions in the log, want %d", accepted, 2*projects)
	}

	// Readers of both replicas see the final state once each has followed the database
	// head: a replica that did not publish learns of it by notification, so it may lag the
	// other by a moment (never by more than the poll interval).
	_, wantTS, err := a.DB.Heads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*testrepo.Repo{a, b} {
		waitTimestamp(t, r, wantTS, 30*time.Second)
	}
	for _, r := range []*testrepo.Repo{a, b} {
		cfg, _ := config.New(r.URL+"/metadata", r.RootJSON)
		cfg.RemoteTargetsURL = r.URL + "/targets"
		cfg.LocalMetadataDir, cfg.LocalTargetsDir = t.TempDir(), t.TempDir()
		up, err := updater.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := up.Refresh(); err != nil {
			t.Fatal(err)
		}
		for i := range projects {
			name := fmt.Sprintf("p%02d", i)
			if _, err := up.GetTargetInfo(name + "/1.0/" + name + ".tgz"); err != nil {
				t.Errorf("replica %s: %s: %v", r.URL, name, err)
			}
		}
	}
}

// waitTimestamp waits until r serves timestamp version want (or a later one).
func waitTimestamp(t *testing.T, r *testrepo.Repo, want int64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var got int64
	for {
		resp := r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil)
		var md struct {
			Signed struct {
				Version int64 `json:"version"`
			} `json:"signed"`
		}
		if resp.Status == http.StatusOK && json.Unmarshal(resp.Body, &md) == nil {
			got = md.Signed.Version
			if got >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s still serves timestamp %d after %s, the database holds %d", r.URL, got, limit, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
