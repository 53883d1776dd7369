package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// runBulk loads -n projects straight into the database of a running cairnd, each with
// its own Ed25519 maintainer key and a signed version 1 of its role, staged as an upload
// would stage it; then it wakes the publisher and waits (through the API, like projects
// mode) until everything is published. What gets served is published and signed by
// cairnd exactly as for projects created over HTTP; only the HTTP round trips are skipped,
// so a million projects load in minutes instead of hours.
func runBulk(ctx context.Context, o *options) error {
	if o.databaseURL == "" {
		return fmt.Errorf("bulk: -database-url is required (the database of the running cairnd)")
	}
	// Rows go straight into the database, past the API's checks: check the names here,
	// or a bad prefix loads a million projects no client can name.
	if err := tufrepo.ValidateProjectName(bulkName(o.prefix, 0)); err != nil {
		return fmt.Errorf("bulk: -prefix %q: %w", o.prefix, err)
	}
	conn, err := pgx.Connect(ctx, o.databaseURL)
	if err != nil {
		return fmt.Errorf("bulk: connecting: %w", err)
	}
	defer conn.Close(ctx)
	start := time.Now()
	type pair struct{ project, meta []any }
	out := make(chan pair, 4096)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	expires := time.Now().UTC().Add(tufrepo.ProjectRoleExpiry).Truncate(time.Second)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < o.n; i += workers {
				p, m, err := bulkProject(o.prefix, i, expires)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				out <- pair{p, m}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	projects, metas := make([][]any, 0, o.n), make([][]any, 0, o.n)
	for x := range out {
		projects, metas = append(projects, x.project), append(metas, x.meta)
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	signed := time.Since(start)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"projects"}, []string{"name", "canonical_name", "delegator", "threshold", "keys", "keyids", "role_version", "published_version", "delegated", "delegation_version"}, pgx.CopyFromRows(projects)); err != nil {
		return fmt.Errorf("bulk: copying projects: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"metadata"}, []string{"role", "version", "raw", "length", "sha256", "expires", "action"}, pgx.CopyFromRows(metas)); err != nil {
		return fmt.Errorf("bulk: copying role versions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	loaded := time.Since(start)
	// The planner's statistics are from before the load, when these tables were up to a
	// thousand times smaller: without fresh ones the publisher's statements over the
	// staged rows can get plans that do not finish (BENCHMARKS.md run 11, at 1M). A
	// registry that imports in bulk must do the same. Then the publisher is woken.
	for _, table := range []string{"projects", "metadata"} {
		if _, err := conn.Exec(ctx, "ANALYZE "+table); err != nil {
			return fmt.Errorf("bulk: analyzing %s: %w", table, err)
		}
	}
	analyzed := time.Since(start) - loaded
	if _, err := conn.Exec(ctx, `SELECT pg_notify('cairn_staged', 'bulk')`); err != nil {
		return err
	}
	c := newClient(o, 1)
	// cairnd publishes the backlog in batches (--publish-batch), and a project created
	// over the API is published with the next batch, not after the backlog: wait for the
	// staged rows to be gone, then for a project created now.
	published := time.Now()
	for {
		// EXISTS, not count(*): counting a million staged rows every few seconds would
		// load the database the publisher is working in.
		var staged bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM metadata WHERE snapshot_version IS NULL)`).Scan(&staged); err != nil {
			return fmt.Errorf("bulk: looking for staged roles: %w", err)
		}
		if !staged {
			break
		}
		if time.Since(published) > o.settleTimeout {
			return fmt.Errorf("bulk: role versions still staged after %s (-settle-timeout)", o.settleTimeout)
		}
		time.Sleep(2 * time.Second)
	}
	if _, err := settle(ctx, c, o.prefix, o.settleTimeout); err != nil {
		return err
	}
	settleTook := time.Since(published)
	emit(o, map[string]any{"kind": "bulk", "n": o.n, "sign_seconds": signed.Seconds(), "load_seconds": loaded.Seconds(), "publish_seconds": settleTook.Seconds(), "analyze_seconds": analyzed.Seconds()})
	fmt.Printf("bulk: %d projects signed in %.1fs, loaded in %.1fs, analyzed in %.1fs, published %.1fs later\n", o.n, signed.Seconds(), loaded.Seconds(), analyzed.Seconds(), settleTook.Seconds())
	return nil
}

// bulkProject builds project i: its row and the row of version 1 of its role.
func bulkProject(prefix string, i int, expires time.Time) ([]any, []any, error) {
	name := bulkName(prefix, i)
	seed := sha256.Sum256([]byte(fmt.Sprintf("cairn bulk key %s", name)))
	priv := ed25519.NewKeyFromSeed(seed[:])
	key, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	id, err := key.ID()
	if err != nil {
		return nil, nil, err
	}
	keys, err := json.Marshal(map[string]*metadata.Key{id: key})
	if err != nil {
		return nil, nil, err
	}
	md := metadata.Targets(expires)
	md.Signed.SpecVersion = tufrepo.SpecVersion
	md.Signed.Version = 1
	payload, err := tufrepo.Canonical(md.Signed)
	if err != nil {
		return nil, nil, err
	}
	raw := tufrepo.Envelope(payload, []metadata.Signature{{KeyID: id, Signature: ed25519.Sign(priv, payload)}})
	sum := sha256.Sum256(raw)
	return []any{name, tufrepo.CanonicalProjectName(name), tufrepo.RoleRecentlyClaimed, 1, keys, []string{id}, int64(1), int64(0), false, int64(1)},
		[]any{name, int64(1), raw, int64(len(raw)), sum[:], expires, "accepted"}, nil
}

// bulkName spreads names over the alphabet the way real package names spread, so that the
// delegation trees split as they would: prefix, then a pseudo-random base-36 word.
func bulkName(prefix string, i int) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	x := binary.BigEndian.Uint64(h[:8])
	b := []byte(prefix + "-")
	for range 4 {
		b = append(b, alpha[x%36])
		x /= 36
	}
	// The index keeps names unique.
	return string(b) + strconv.FormatInt(int64(i), 36)
}
