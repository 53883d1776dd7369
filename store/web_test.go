package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/store"
)

// webFixture writes projects and release files straight into the database: the web UI's
// queries only read them.
func webFixture(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	for _, p := range []struct {
		name, canonical string
		published       int64
	}{{"webq-a", "webq-a", 1}, {"webq.ab", "webq-ab", 1}, {"webq-b", "webq-b", 0}, {"webqx", "webqx", 1}} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO projects (name, canonical_name, delegator, threshold, keys, keyids, role_version, published_version, delegated)
			VALUES ($1, $2, 'recently-claimed', 1, '{}', '{k}', 1, $3, true)`, p.name, p.canonical, p.published); err != nil {
			t.Fatal(err)
		}
	}
	future := time.Now().Add(100 * 365 * 24 * time.Hour) // newer than anything other tests write
	for i, f := range []struct{ project, version, file string }{
		{"webq-a", "1.0", "a-1.0.tar.gz"}, {"webq-a", "1.0", "a-1.0.whl"}, {"webq.ab", "2.0", "ab-2.0.tar.gz"},
		{"webq-b", "0.1", "b-0.1.tar.gz"}, // not published
		{"webq-a", "1.1", "a-1.1.tar.gz"},
	} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO release_files (path, project, version, filename, length, sha256, role_version, created_at)
			VALUES ($1, $2, $3, $4, 10, sha256(convert_to($6, 'UTF8')), 1, $5)`, f.project+"/"+f.version+"/"+f.file, f.project, f.version, f.file, future.Add(time.Duration(i)*time.Second), f.file); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWebQueries(t *testing.T) {
	// A database of its own: the fixture's projects have no usable keys, which other tests
	// of the package (the claim queue) would trip on.
	u, drop, err := testdb.Create("store_web")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	ctx := context.Background()
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	webFixture(t, db)

	t.Run("search by canonical prefix", func(t *testing.T) {
		for _, tc := range []struct {
			q    string
			want []string
		}{
			{"webq_a", []string{"webq-a", "webq.ab"}}, // exact match first; '_' is '-' (PEP 503)
			{"WEBQ.AB", []string{"webq.ab"}},
			{"webq-", []string{"webq-a", "webq.ab", "webq-b"}},
			{"webq%", nil}, // LIKE wildcards are literal
			{"", nil},
		} {
			ms, err := db.SearchProjects(ctx, tc.q, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.Name)
			}
			if len(got) != len(tc.want) {
				t.Errorf("search %q: %v, want %v", tc.q, got, tc.want)
				continue
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("search %q: %v, want %v", tc.q, got, tc.want)
				}
			}
		}
	})

	t.Run("recent releases are published ones, grouped", func(t *testing.T) {
		rs, err := db.RecentReleases(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.RecentRelease{{Project: "webq-a", Version: "1.1", Files: 1}, {Project: "webq.ab", Version: "2.0", Files: 1}, {Project: "webq-a", Version: "1.0", Files: 2}}
		if len(rs) != len(want) {
			t.Fatalf("recent releases: %+v", rs)
		}
		for i := range want {
			if rs[i].Project != want[i].Project || rs[i].Version != want[i].Version || rs[i].Files != want[i].Files {
				t.Errorf("recent release %d: %+v, want %+v", i, rs[i], want[i])
			}
		}
	})

	t.Run("release files", func(t *testing.T) {
		rel, err := db.ReleaseFiles(ctx, "webq-a", "1.0")
		if err != nil || len(rel.Files) != 2 || !rel.Published || rel.Files[0].Name != "a-1.0.tar.gz" {
			t.Fatalf("release: %+v %v", rel, err)
		}
		if _, err := db.ReleaseFiles(ctx, "webq-a", "9.9"); api.CodeOf(err) != api.CodeNotFound {
			t.Errorf("missing release: %v", err)
		}
	})

	t.Run("project state changes with what the pages show", func(t *testing.T) {
		now := time.Now()
		s1, err := db.ProjectState(ctx, "webq-a", now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO proposals (project, kind, version, signed, signatures, proposed_by, expires_at) VALUES ('webq-a', 'role', 2, '{}', '[]', 'k', $1)`, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		s2, _ := db.ProjectState(ctx, "webq-a", now)
		if s2 == s1 {
			t.Error("a new proposal does not change the project's state")
		}
		if s3, _ := db.ProjectState(ctx, "webq-a", now.Add(2*time.Hour)); s3 != s1 {
			t.Error("an expired proposal still changes the project's state")
		}
		if _, err := db.Pool.Exec(ctx, `UPDATE projects SET published_version = 2 WHERE name = 'webq-a'`); err != nil {
			t.Fatal(err)
		}
		if s4, _ := db.ProjectState(ctx, "webq-a", now); s4 == s2 {
			t.Error("a publish does not change the project's state")
		}
		if _, err := db.ProjectState(ctx, "nope", now); api.CodeOf(err) != api.CodeNotFound {
			t.Errorf("unknown project: %v", err)
		}
	})

	t.Run("estimate", func(t *testing.T) {
		if n, err := db.EstimatedProjects(ctx); err != nil || n < 0 {
			t.Errorf("estimated projects: %d %v", n, err)
		}
	})
}
