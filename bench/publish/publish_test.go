// Package publish benchmarks tufrepo.Publisher.PublishOnce against a real store.DB: the
// database of a bootstrapped dev repository (cairnd serve --dev) that is NOT being served
// by a running cairnd with its publisher (which would publish the staged roles first).
//
//	CAIRN_BENCH_DATABASE_URL=postgres://…/cairn_bench CAIRN_BENCH_DATA_DIR=DIR \
//	  go test ./bench/publish -run '^$' -bench PublishOnce -benchtime 20x -cpuprofile cpu.out
//	go tool pprof -top -tagfocus=phase=publish publish.test cpu.out
//
// Every iteration stages one role version (untimed) and then times one PublishOnce. The
// publish itself runs under the pprof label phase=publish, so a profile can be narrowed
// to it. The benchmark reports p50/p95 and a wall-clock breakdown by storage call.
package publish

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

type env struct {
	db      *store.DB
	signers tufrepo.Signers
}

func setup(b *testing.B) *env {
	dbURL, dir := os.Getenv("CAIRN_BENCH_DATABASE_URL"), os.Getenv("CAIRN_BENCH_DATA_DIR")
	if dbURL == "" || dir == "" {
		b.Skip("set CAIRN_BENCH_DATABASE_URL and CAIRN_BENCH_DATA_DIR (a cairnd --dev data dir) to run")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	// As cairnd does: large signed metadata (the snapshot) as files in the blob directory.
	blobs, err := blobstore.OpenDir(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	db.StoreMetadataIn(blobs.Meta, store.DefaultMetaFileMin)
	keys := filepath.Join(dir, "keys")
	load := func(role string) *tufrepo.OnlineSigner {
		u := (&url.URL{Scheme: "file", Path: filepath.Join(keys, role+".json"), RawQuery: "passphrase-file=" + url.QueryEscape(filepath.Join(keys, "passphrase"))}).String()
		s, err := tufrepo.FileSignerFromURI(ctx, u, os.Getenv)
		if err != nil {
			b.Fatal(err)
		}
		o, err := tufrepo.NewOnlineSigner(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		return o
	}
	return &env{db: db, signers: tufrepo.Signers{Timestamp: load(tufrepo.RoleTimestamp), Snapshot: load(tufrepo.RoleSnapshot), RecentlyClaimed: load(tufrepo.RoleRecentlyClaimed)}}
}

// ---- a maintainer --------------------------------------------------------------------

type maintainer struct {
	name   string
	signer signature.Signer
	d      tufrepo.ProjectDelegation
	ver    int64
}

func newMaintainer(b *testing.B, name string) *maintainer {
	priv, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	if err != nil {
		b.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		b.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		b.Fatal(err)
	}
	return &maintainer{name: name, signer: s, d: tufrepo.ProjectDelegation{Name: name, Keys: map[string]*metadata.Key{o.KeyID: o.Key}, KeyIDs: []string{o.KeyID}, Threshold: 1}}
}

func (m *maintainer) nextRole(b *testing.B) []byte {
	m.ver++
	md := metadata.Targets(time.Now().Add(tufrepo.ProjectRoleExpiry).UTC().Truncate(time.Second))
	md.Signed.SpecVersion = tufrepo.SpecVersion
	md.Signed.Version = m.ver
	if _, err := md.Sign(m.signer); err != nil {
		b.Fatal(err)
	}
	raw, err := md.ToBytes(false)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func (e *env) create(b *testing.B, m *maintainer) {
	if _, err := tufrepo.CreateProject(context.Background(), e.db, m.d, "", m.nextRole(b), time.Now()); err != nil {
		b.Fatal(err)
	}
}

func (e *env) submit(b *testing.B, m *maintainer) {
	if _, err := tufrepo.SubmitRole(context.Background(), e.db, m.name, m.nextRole(b), time.Now()); err != nil {
		b.Fatal(err)
	}
}

func randName(prefix string) string {
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	return prefix + hex.EncodeToString(r)
}

// ---- wall-clock breakdown of a publish ---------------------------------------------

type timings struct {
	mu sync.Mutex
	d  map[string]time.Duration
}

func (t *timings) add(k string, d time.Duration) {
	t.mu.Lock()
	t.d[k] += d
	t.mu.Unlock()
}

type timedStore struct {
	inner tufrepo.PublishStore
	t     *timings
}

func (s timedStore) InPublishTx(ctx context.Context, fn func(ctx context.Context, tx tufrepo.PublishTx) error) error {
	start := time.Now()
	var end time.Time
	err := s.inner.InPublishTx(ctx, func(ctx context.Context, tx tufrepo.PublishTx) error {
		s.t.add("begin+lock", time.Since(start))
		f := time.Now()
		err := fn(ctx, timedTx{tx, tx, s.t})
		end = time.Now()
		s.t.add("publisher (Go + calls)", end.Sub(f))
		return err
	})
	s.t.add("commit", time.Since(end))
	return err
}

// timedTx times the storage calls of a publish. Methods it does not override pass
// through untimed (the embedded interface), so it keeps compiling as PublishTx grows.
type timedTx struct {
	tufrepo.PublishTx
	tx tufrepo.PublishTx
	t  *timings
}

func (x timedTx) time(k string) func() {
	s := time.Now()
	return func() { x.t.add("  tx."+k, time.Since(s)) }
}

func (x timedTx) Head(ctx context.Context) (tufrepo.Head, error) {
	defer x.time("Head")()
	return x.tx.Head(ctx)
}
func (x timedTx) SnapshotRaw(ctx context.Context, version int64) ([]byte, error) {
	defer x.time("SnapshotRaw")()
	return x.tx.SnapshotRaw(ctx, version)
}
func (x timedTx) StagedRoles(ctx context.Context, limit int, with []string) ([]tufrepo.StagedRole, bool, error) {
	defer x.time("StagedRoles")()
	return x.tx.StagedRoles(ctx, limit, with)
}
func (x timedTx) UndelegatedProjects(ctx context.Context, staged []string) ([]tufrepo.UndelegatedProject, error) {
	defer x.time("UndelegatedProjects")()
	return x.tx.UndelegatedProjects(ctx, staged)
}
func (x timedTx) NodeProjects(ctx context.Context, roles, names, staged []string) ([]tufrepo.NodeProject, error) {
	defer x.time("NodeProjects")()
	return x.tx.NodeProjects(ctx, roles, names, staged)
}
func (x timedTx) DirtyRCShards(ctx context.Context) ([]string, error) {
	defer x.time("DirtyRCShards")()
	return x.tx.DirtyRCShards(ctx)
}
func (x timedTx) SaveRCShards(ctx context.Context, added []string, assign map[string]string, clean []string) error {
	defer x.time("SaveRCShards")()
	return x.tx.SaveRCShards(ctx, added, assign, clean)
}
func (x timedTx) InsertSigned(ctx context.Context, m tufrepo.MetadataVersion, snapshot int64) error {
	defer x.time("InsertSigned(" + m.Role + ")")()
	return x.tx.InsertSigned(ctx, m, snapshot)
}
func (x timedTx) MarkPublished(ctx context.Context, roles []tufrepo.StagedRole, projects []string, snapshot int64) error {
	defer x.time("MarkPublished")()
	return x.tx.MarkPublished(ctx, roles, projects, snapshot)
}
func (x timedTx) SetHead(ctx context.Context, snapshot, timestamp int64) error {
	defer x.time("SetHead")()
	return x.tx.SetHead(ctx, snapshot, timestamp)
}
func (x timedTx) AppendAudit(ctx context.Context, entries []api.LogEntry) error {
	defer x.time("AppendAudit")()
	return x.tx.AppendAudit(ctx, entries)
}
func (x timedTx) NotifyPublished(ctx context.Context, timestamp int64) error {
	defer x.time("NotifyPublished")()
	return x.tx.NotifyPublished(ctx, timestamp)
}

// ---- benchmarks ---------------------------------------------------------------------

func run(b *testing.B, prepare func(e *env), stage func(e *env, i int), wantRoles int) {
	e := setup(b)
	if prepare != nil {
		prepare(e)
	}
	ctx := context.Background()
	tm := &timings{d: map[string]time.Duration{}}
	p := tufrepo.NewPublisher(timedStore{e.db, tm}, e.signers, time.Now, nil)
	// Untimed: load the index from the head snapshot and publish whatever is staged.
	if _, err := p.PublishOnce(ctx); err != nil {
		b.Fatal(err)
	}
	var snapBytes int
	if m, err := e.db.LatestPublished(ctx, tufrepo.RoleSnapshot); err == nil {
		snapBytes = len(m.Raw)
	}
	tm.d = map[string]time.Duration{}
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		stage(e, i)
		b.StartTimer()
		var res tufrepo.PublishResult
		var err error
		start := time.Now()
		pprof.Do(ctx, pprof.Labels("phase", "publish"), func(ctx context.Context) { res, err = p.PublishOnce(ctx) })
		durs = append(durs, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if !res.Published || res.Roles != wantRoles {
			b.Fatalf("publish %d: published %v with %d roles, want %d", i, res.Published, res.Roles, wantRoles)
		}
	}
	b.StopTimer()
	slices.Sort(durs)
	q := func(p float64) time.Duration { return durs[max(0, min(len(durs)-1, int(float64(len(durs))*p+0.5)-1))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.95).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(snapBytes), "snapshot-bytes")
	if b.N == 1 && !testing.Short() {
		return // the calibration run of `go test -bench`: too few samples to report
	}
	var keys []string
	for k := range tm.d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "publishes %d, snapshot %d bytes, p50 %s p95 %s max %s; mean wall time per publish by step:\n", len(durs), snapBytes, q(0.5), q(0.95), durs[len(durs)-1])
	var calls time.Duration
	for _, k := range keys {
		if strings.HasPrefix(k, "  tx.") {
			calls += tm.d[k]
		}
		fmt.Fprintf(&sb, "  %-34s %8.2f ms\n", k, float64(tm.d[k].Microseconds())/1000/float64(len(durs)))
	}
	fmt.Fprintf(&sb, "  %-34s %8.2f ms\n", "publisher Go code (not in tx calls)", float64((tm.d["publisher (Go + calls)"]-calls).Microseconds())/1000/float64(len(durs)))
	b.Log(sb.String())
}

// BenchmarkPublishOnce: one staged role version of an existing project per publish.
func BenchmarkPublishOnce(b *testing.B) {
	var m *maintainer
	run(b, func(e *env) {
		m = newMaintainer(b, randName("bench-pub-"))
		e.create(b, m)
	}, func(e *env, i int) { e.submit(b, m) }, 1)
}

// BenchmarkPublishNewProject: one new project per publish, which also re-signs
// recently-claimed with every project it delegates.
func BenchmarkPublishNewProject(b *testing.B) {
	run(b, nil, func(e *env, i int) {
		e.create(b, newMaintainer(b, randName("bench-new-")))
	}, 1)
}
