package web_test

import (
	"context"
	stdjson "encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// The server-side rendering benchmark (BENCHMARKS.md, "Web UI"): the home page of a
// repository with 100,000 projects and the page of a project with 1,000 releases, each
//   - uncached: a new query string per request, so every request renders (the page
//     cache is keyed by the URL);
//   - cached: the same URL again (the page cache answers after one state query);
//   - revalidated: If-None-Match with the page's ETag (304).
// Requests go straight to the server's handler (no network); p50/p95/p99 are reported.
//
//	make bench-web   (go test -run '^$' -bench Page -benchtime 400x ./web/)

const benchProjects = 100_000

type benchRepo struct {
	r *testrepo.Repo
}

func setupBench(b *testing.B) *benchRepo {
	b.Helper()
	u, drop, err := testdb.Create("web_bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(drop)
	r := testrepo.Boot(b, u, nil)
	alice := testrepo.NewKey(b, tufrepo.KeyEd25519)
	// One project with 1,000 releases, through the real upload path: one role version
	// with 1,000 files, every tenth release yanked with a reason.
	r.CreateProject(b, r.AdminToken, "big", 1, []*testrepo.Key{alice}, alice)
	exp := time.Now().Add(90 * 24 * time.Hour)
	var files []testrepo.File
	for i := 0; i < 1000; i++ {
		f := testrepo.File{Path: fmt.Sprintf("big/1.%d.0/big-1.%d.0.tar.gz", i, i), Content: []byte(fmt.Sprintf("release %d of big", i))}
		r.PutBlob(b, r.AdminToken, f.Content)
		files = append(files, f)
	}
	md := testrepo.Role(2, exp, files...)
	for i := 0; i < 1000; i += 10 {
		c := []byte(fmt.Sprintf(`{"version":"1.%d.0","yanked":true,"yank_reason":"broken build %d"}`, i, i))
		rm := stdjson.RawMessage(c)
		md.Signed.Targets[files[i].Path].Custom = &rm
	}
	if resp := r.Submit(b, r.AdminToken, "big", testrepo.Sign(b, md, alice)); resp.Status != http.StatusCreated {
		b.Fatalf("uploading 1,000 releases: %d %s", resp.Status, resp.Body)
	}
	// 100,000 projects with one published release each, written straight into the
	// database: the home page reads only indexes and the published head, so how they got
	// there does not change its cost.
	ctx := context.Background()
	key := testrepo.JSON(b, map[string]any{alice.ID(): alice.API()})
	if _, err := r.DB.Pool.Exec(ctx, `
		INSERT INTO projects (name, canonical_name, delegator, threshold, keys, keyids, role_version, published_version, delegated)
		SELECT 'p' || lpad(i::text, 6, '0'), 'p' || lpad(i::text, 6, '0'), 'recently-claimed', 1, $1, ARRAY[$2], 1, 1, true
		FROM generate_series(1, $3) i`, key, alice.ID(), benchProjects); err != nil {
		b.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(ctx, `
		INSERT INTO release_files (path, project, version, filename, length, sha256, role_version, created_at)
		SELECT 'p' || lpad(i::text, 6, '0') || '/1.0/f-1.0.tar.gz', 'p' || lpad(i::text, 6, '0'), '1.0', 'f-1.0.tar.gz', 10, sha256(i::text::bytea), 1, now() - interval '1 hour' - i * interval '1 second'
		FROM generate_series(1, $1) i`, benchProjects); err != nil {
		b.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(ctx, `ANALYZE projects; ANALYZE release_files`); err != nil {
		b.Fatal(err)
	}
	return &benchRepo{r: r}
}

func benchPage(b *testing.B, br *benchRepo, path string) {
	h := br.r.Server.Handler()
	get := func(url, inm string) (int, string, time.Duration) {
		req := httptest.NewRequest(http.MethodGet, url, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Header().Get("ETag"), time.Since(start)
	}
	code, etag, _ := get(path, "")
	if code != http.StatusOK || etag == "" {
		b.Fatalf("%s: %d, ETag %q", path, code, etag)
	}
	for _, mode := range []string{"uncached", "cached", "revalidated"} {
		b.Run(mode, func(b *testing.B) {
			var ds []time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				var c int
				var d time.Duration
				switch mode {
				case "uncached":
					sep := "?"
					if strings.Contains(path, "?") {
						sep = "&"
					}
					c, _, d = get(fmt.Sprintf("%s%sn=%d-%d", path, sep, i, time.Now().UnixNano()), "")
				case "cached":
					c, _, d = get(path, "")
				default:
					c, _, d = get(path, etag)
				}
				if want := map[bool]int{true: http.StatusNotModified, false: http.StatusOK}[mode == "revalidated"]; c != want {
					b.Fatalf("%s %s: %d", mode, path, c)
				}
				ds = append(ds, d)
			}
			slices.Sort(ds)
			q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.95), "p95-ms")
			b.ReportMetric(q(0.99), "p99-ms")
		})
	}
}

// BenchmarkPages sets up one repository (about 20 s) and measures each page on it.
func BenchmarkPages(b *testing.B) {
	br := setupBench(b)
	b.Run("home-100k-projects", func(b *testing.B) { benchPage(b, br, "/") })
	b.Run("project-1000-releases", func(b *testing.B) { benchPage(b, br, "/projects/big") })
	b.Run("release", func(b *testing.B) { benchPage(b, br, "/projects/big/1.500.0") })
	b.Run("search", func(b *testing.B) { benchPage(b, br, "/search?q=p0123") })
}
