package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// runSearch measures GET /api/v1/search (issue #14) at scale. With -n > 0 it first loads
// -n projects and -files release files straight into the database of a running cairnd
// (rows only: search reads rows, not signed metadata, so nothing is signed), as published,
// files in publication order over a year; then ANALYZE. Then, for each query shape, it prints the plan
// (EXPLAIN ANALYZE of the same SQL shape) and times -requests HTTP requests, one at a
// time, with arguments drawn at random from the loaded rows.
func runSearch(ctx context.Context, o *options) error {
	if o.databaseURL == "" {
		return fmt.Errorf("search: -database-url is required (the database of the running cairnd)")
	}
	conn, err := pgx.Connect(ctx, o.databaseURL)
	if err != nil {
		return fmt.Errorf("search: connecting: %w", err)
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC().Truncate(time.Second)
	if o.n > 0 {
		start := time.Now()
		keyOf := func(i int) string {
			h := sha256.Sum256(fmt.Appendf(nil, "search key %d", i%(o.n/2+1))) // half the keys maintain two projects
			return hex.EncodeToString(h[:])
		}
		projects := make([][]any, 0, o.n)
		for i := range o.n {
			name := bulkName(o.prefix, i)
			k := keyOf(i)
			keys := fmt.Sprintf(`{%q:{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":%q}}}`, k, k)
			projects = append(projects, []any{name, tufrepo.CanonicalProjectName(name), tufrepo.RoleRecentlyClaimed, 1, keys, []string{k}, int64(1), int64(1), true, int64(1)})
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"projects"}, []string{"name", "canonical_name", "delegator", "threshold", "keys", "keyids", "role_version", "published_version", "delegated", "delegation_version"}, pgx.CopyFromRows(projects)); err != nil {
			return fmt.Errorf("search: copying projects: %w", err)
		}
		i := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i == o.files {
				return nil, nil
			}
			p := i % o.n
			name := bulkName(o.prefix, p)
			version := fmt.Sprintf("%d.%d", i/o.n, i%7)
			file := fmt.Sprintf("%s-%s.tar.gz", name, version)
			sum := sha256.Sum256(fmt.Appendf(nil, "search file %d", i/2)) // every file is in two releases
			// Files are inserted as they are published, so the table is in time order, as
			// a real one is; projects are not (names arrive in any order).
			at := now.Add(-365 * 24 * time.Hour).Add(time.Duration(i) * (365 * 24 * time.Hour / time.Duration(o.files)))
			i++
			return []any{tufrepo.TargetPath(name, version, file), name, version, file, int64(1000 + i%5000), sum[:], int64(1), at}, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"release_files"}, []string{"path", "project", "version", "filename", "length", "sha256", "role_version", "created_at"}, src); err != nil {
			return fmt.Errorf("search: copying release files: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "ANALYZE projects; ANALYZE release_files"); err != nil {
			return err
		}
		fmt.Printf("search: loaded %d projects and %d files in %.1fs\n", o.n, o.files, time.Since(start).Seconds())
	}
	// Arguments: real names, keys and hashes from the tables.
	var names, keys, sums []string
	rows, _ := conn.Query(ctx, `SELECT name, keyids[1] FROM projects TABLESAMPLE SYSTEM (5) LIMIT 2000`)
	for rows.Next() {
		var n, k string
		if err := rows.Scan(&n, &k); err != nil {
			return err
		}
		names, keys = append(names, n), append(keys, k)
	}
	rows.Close()
	rows, _ = conn.Query(ctx, `SELECT encode(sha256, 'hex') FROM release_files TABLESAMPLE SYSTEM (1) LIMIT 2000`)
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		sums = append(sums, s)
	}
	rows.Close()
	if len(names) == 0 || len(sums) == 0 {
		return fmt.Errorf("search: no projects or files in the database")
	}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	day := func() (string, string) {
		a := now.Add(-time.Duration(rng.Int64N(int64(360 * 24 * time.Hour)))).Truncate(time.Hour)
		return a.Format(time.RFC3339), a.Add(24 * time.Hour).Format(time.RFC3339)
	}
	shapes := []struct {
		name string
		q    func() url.Values
	}{
		{"name prefix (3 chars after the prefix)", func() url.Values {
			n := pick(names)
			return url.Values{"q": {n[:min(len(n), len(o.prefix)+4)]}}
		}},
		{"exact name", func() url.Values { return url.Values{"q": {pick(names)}} }},
		{"maintainer key", func() url.Values { return url.Values{"key": {pick(keys)}} }},
		{"file sha256", func() url.Values { return url.Values{"sha256": {pick(sums)}} }},
		{"one day of publications", func() url.Values { a, b := day(); return url.Values{"published_after": {a}, "published_before": {b}} }},
		{"published since 30 days", func() url.Values {
			return url.Values{"published_after": {now.Add(-30 * 24 * time.Hour).Format(time.RFC3339)}}
		}},
		{"name prefix + one day", func() url.Values {
			a, b := day()
			n := pick(names)
			return url.Values{"q": {n[:min(len(n), len(o.prefix)+2)]}, "published_after": {a}, "published_before": {b}}
		}},
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, s := range shapes {
		// Warm up, then time one request at a time.
		var lat []time.Duration
		results := 0
		for i := range o.requests + 20 {
			u := o.server + "/api/v1/search?" + s.q().Encode()
			t0 := time.Now()
			resp, err := hc.Get(u)
			if err != nil {
				return err
			}
			var res struct {
				Projects []json.RawMessage `json:"projects"`
				Files    []json.RawMessage `json:"files"`
			}
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			d := time.Since(t0)
			if err != nil || resp.StatusCode != http.StatusOK {
				return fmt.Errorf("search %s: %s: %d %v", s.name, u, resp.StatusCode, err)
			}
			if i >= 20 {
				lat = append(lat, d)
				results += len(res.Projects) + len(res.Files)
			}
		}
		slices.Sort(lat)
		fmt.Printf("search %-40s p50 %6.2f  p95 %6.2f  p99 %6.2f ms  (%d requests, %.1f results each)\n", s.name, ms(pct(lat, 50)), ms(pct(lat, 95)), ms(pct(lat, 99)), len(lat), float64(results)/float64(len(lat)))
		emit(o, map[string]any{"kind": "search", "shape": s.name, "p50_ms": ms(pct(lat, 50)), "p95_ms": ms(pct(lat, 95)), "p99_ms": ms(pct(lat, 99)), "requests": len(lat)})
	}
	// The plans of the SQL shapes, for BENCHMARKS.md.
	key, sum := pick(keys), pick(sums)
	a, b := day()
	for _, p := range []struct{ name, sql string }{
		{"prefix", `SELECT name FROM projects WHERE published_version > 0 AND canonical_name LIKE '` + strings.ReplaceAll(pick(names)[:len(o.prefix)+3], "'", "") + `%' ESCAPE '\' ORDER BY canonical_name LIMIT 51`},
		{"key", `SELECT name FROM projects WHERE published_version > 0 AND keyids @> ARRAY['` + key + `']::text[] ORDER BY canonical_name LIMIT 51`},
		{"sha256", `SELECT f.path FROM release_files f JOIN projects p ON p.name = f.project WHERE f.role_version <= p.published_version AND f.sha256 = decode('` + sum + `', 'hex') ORDER BY f.created_at DESC, f.path DESC LIMIT 51`},
		{"day", `SELECT f.path FROM release_files f JOIN projects p ON p.name = f.project WHERE f.role_version <= p.published_version AND f.created_at >= '` + a + `' AND f.created_at < '` + b + `' ORDER BY f.created_at DESC, f.path DESC LIMIT 51`},
	} {
		rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) "+p.sql)
		if err != nil {
			return err
		}
		fmt.Printf("plan %s:\n", p.name)
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			fmt.Println("   ", line)
		}
		rows.Close()
	}
	return nil
}
