package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// The publisher lock's key (store.publisherLockID) as pg_locks shows an advisory lock on a
// bigint: its high and low 32 bits.
const lockHolderQuery = `SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1667328370 AND l.objid = 1852863842 AND l.objsubid = 1`

// TestPublisherFaults runs three cairnd processes on one database, one of them through a
// TCP relay, with uploads flowing to all of them, and breaks them in turn:
//   - SIGSTOP of the replica holding the publisher lock: another replica publishes again
//     once PostgreSQL ends the frozen session (--db-idle-timeout, 4 s), and the frozen one,
//     woken, publishes nothing from its stale state;
//   - kill -9 of the replica holding the lock;
//   - the relay stops forwarding bytes (a replica cut off from PostgreSQL): it serves its
//     last timestamp for at most --max-staleness, then 503, and /readyz fails; a client
//     moving between replicas sees the timestamp go back only within that window.
//
// Throughout, every upload answered 201 is stored and published, no snapshot or timestamp
// version is signed twice, the audit chain verifies, and go-tuf reads every acknowledged
// version from every replica.
func TestPublisherFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection takes a minute")
	}
	bin := buildCairnd(t)
	u, drop, err := testdb.Create("e2e_faults")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	// Bootstrap in-process, create the projects, then hand the data dir to three processes.
	boot := testrepo.Boot(t, u, nil)
	dir, token, rootJSON := boot.Dir, boot.AdminToken, boot.RootJSON
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	const projects = 9
	for i := range projects {
		boot.CreateProject(t, token, fmt.Sprintf("f%02d", i), 1, []*testrepo.Key{key}, key)
	}
	_ = boot.Close()

	ctx := context.Background()
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	relay := newRelay(t, u)
	const maxStaleness = 5 * time.Second
	reps := []*replica{
		{name: "a", db: u},
		{name: "b", db: u},
		{name: "c", db: relay.url},
	}
	for _, r := range reps {
		r.start(t, bin, dir, maxStaleness)
	}
	t.Cleanup(func() {
		for _, r := range reps {
			r.stop()
		}
	})

	up := &uploaders{t: t, db: db, token: token, key: key, reps: reps, acked: map[string][]ack{}}
	stopUploads := up.run(projects)
	defer stopUploads()
	up.waitAcked(t, 20)

	// 1. SIGSTOP the lock holder.
	frozen, took := freezeLockHolder(t, db, reps)
	t.Logf("SIGSTOP of replica %s while it held the publisher lock: another replica published %s later (its publish takes a second: the failpoint)", frozen.name, took.Round(10*time.Millisecond))
	if took > 20*time.Second {
		t.Errorf("publishing resumed %s after the lock holder froze, want a few seconds (--db-idle-timeout)", took)
	}
	up.waitAcked(t, up.count()+10)
	frozen.signal(t, syscall.SIGCONT)
	frozen.stopped.Store(false)
	up.waitAcked(t, up.count()+10)

	// 2. kill -9 the lock holder (or, if no publish is running at that instant, the
	// replica that published last); then start it again.
	victim := killLockHolder(t, db, reps)
	t.Logf("kill -9 of replica %s", victim.name)
	up.waitAcked(t, up.count()+10)
	victim.start(t, bin, dir, maxStaleness)
	up.waitAcked(t, up.count()+10)

	// 3. Cut replica c off from PostgreSQL while it holds the publisher lock.
	c, a := reps[2], reps[0]
	cutAt, lockAt := cutLockHolder(t, db, reps, relay)
	t.Logf("relay of replica c stopped forwarding while c held the publisher lock: another replica took it %s later", lockAt.Round(10*time.Millisecond))
	if lockAt > 20*time.Second {
		t.Errorf("the publisher lock was taken over %s after its holder was cut off, want a few seconds", lockAt)
	}
	obs := watchTimestamps(t, a, c, cutAt, maxStaleness+4*time.Second)
	probe := time.Now()
	st, _ := c.get("/metadata/999.root.json", 15*time.Second)
	if d := time.Since(probe); st != http.StatusServiceUnavailable && st != http.StatusNotFound || d > 8*time.Second {
		t.Errorf("root probe through the cut-off replica: %d after %s, want 404 or 503 within seconds", st, d)
	}
	obs.wait()
	obs.check(t, maxStaleness)
	if st, body := c.get("/readyz", 5*time.Second); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz of the cut-off replica: %d %s", st, body)
	}
	relay.freeze(false)
	waitFor(t, 30*time.Second, "the reconnected replica to serve the current timestamp", func() bool {
		st, _ := c.get("/readyz", 5*time.Second)
		return st == http.StatusOK
	})
	up.waitAcked(t, up.count()+10)
	stopUploads()

	// Nothing acknowledged is lost, nothing forked.
	for _, r := range reps {
		r.signal(t, syscall.SIGCONT)
	}
	checkAcked(t, db, up.snapshot())
	checkNoFork(t, db)
	for _, r := range reps {
		if r.stopped.Load() {
			continue
		}
		checkReader(t, r.url, rootJSON, up.snapshot())
	}
	t.Logf("%d uploads acknowledged, %d answered 503 (not stored), %d with no answer", up.count(), up.unavailable.Load(), up.unknown.Load())
}

// replica is one cairnd process.
type replica struct {
	name, db, url string
	cmd           *exec.Cmd
	stderr        *bytes.Buffer
	stopped       atomic.Bool // SIGSTOPped or killed
	mu            sync.Mutex
}

func (r *replica) start(t *testing.T, bin, dir string, maxStaleness time.Duration) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--dev", "--data-dir", dir, "--database-url", r.db, "--listen", addr, "--log-level", "warn", "--max-staleness", maxStaleness.String(), "--publish-interval", "1h")
	// Every publish signs its timestamp for a second: long enough to freeze it mid-publish.
	cmd.Env = append(os.Environ(), "CAIRN_FAILPOINT=slow-timestamp-sign")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r.mu.Lock()
	r.cmd, r.stderr, r.url = cmd, &stderr, "http://"+addr
	r.mu.Unlock()
	waitUp(t, r.url, done)
	r.stopped.Store(false)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica %s (pid %d) stderr:\n%s", r.name, cmd.Process.Pid, stderr.String())
		}
	})
}

func (r *replica) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

func (r *replica) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(r.pid(), s); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("signal %v to replica %s: %v", s, r.name, err)
	}
}

func (r *replica) stop() {
	_ = syscall.Kill(r.pid(), syscall.SIGCONT)
	_ = syscall.Kill(r.pid(), syscall.SIGKILL)
}

func (r *replica) base() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.url
}

// get fetches path with a deadline; status 0 means no answer.
func (r *replica) get(path string, timeout time.Duration) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.base()+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// relay forwards TCP connections to PostgreSQL and can stop forwarding bytes, leaving the
// connections open: a network partition as a replica sees it.
type relay struct {
	url    string
	mu     sync.Mutex
	frozen bool
	cond   *sync.Cond
}

func newRelay(t *testing.T, dbURL string) *relay {
	t.Helper()
	pu, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := pu.Host
	if pu.Port() == "" {
		target = net.JoinHostPort(pu.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	r := &relay{}
	r.cond = sync.NewCond(&r.mu)
	ru := *pu
	ru.Host = ln.Addr().String()
	r.url = ru.String()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			go r.pipe(in, out)
			go r.pipe(out, in)
		}
	}()
	return r
}

func (r *relay) pipe(src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			for r.frozen {
				r.cond.Wait()
			}
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *relay) freeze(on bool) {
	r.mu.Lock()
	r.frozen = on
	r.mu.Unlock()
	r.cond.Broadcast()
}

// ack is an upload answered 201 published.
type ack struct {
	version int64
	sha256  string
}

// uploaders upload new versions of every project through the replicas in turn, as
// maintainers would, and record what was acknowledged.
type uploaders struct {
	t     *testing.T
	db    *store.DB
	token string
	key   *testrepo.Key
	reps  []*replica

	mu          sync.Mutex
	acked       map[string][]ack
	n           int
	unavailable atomic.Int64
	unknown     atomic.Int64
}

func (u *uploaders) run(projects int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range projects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.loop(ctx, fmt.Sprintf("f%02d", i), i)
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

func (u *uploaders) loop(ctx context.Context, name string, turn int) {
	var files []testrepo.File
	version := int64(1)
	for ctx.Err() == nil {
		next := version + 1
		f := testrepo.File{Path: fmt.Sprintf("%s/%d.0/%s.tgz", name, next, name), Content: []byte(fmt.Sprintf("%s release %d", name, next))}
		r := u.reps[turn%len(u.reps)]
		turn++
		if r.stopped.Load() {
			continue
		}
		raw, err := u.sign(next, append(files, f))
		if err != nil {
			u.t.Error(err)
			return
		}
		status := u.upload(ctx, r, f.Content, name, raw)
		switch status {
		case http.StatusCreated:
			sum := sha256.Sum256(raw)
			u.mu.Lock()
			u.acked[name] = append(u.acked[name], ack{next, hex.EncodeToString(sum[:])})
			u.n++
			u.mu.Unlock()
			files, version = append(files, f), next
			continue
		case http.StatusServiceUnavailable:
			u.unavailable.Add(1)
		case http.StatusConflict:
		default:
			u.unknown.Add(1)
		}
		// Not acknowledged: learn from the database whether it was stored after all (an
		// answer lost with a frozen replica) and go on from there.
		var current int64
		if err := u.db.Pool.QueryRow(ctx, `SELECT role_version FROM projects WHERE name = $1`, name).Scan(&current); err != nil {
			if ctx.Err() == nil {
				u.t.Error(err)
			}
			return
		}
		if current == next {
			files, version = append(files, f), next
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (u *uploaders) sign(version int64, files []testrepo.File) ([]byte, error) {
	md := testrepo.Role(version, time.Now().Add(tufrepo.ProjectRoleExpiry), files...)
	if _, err := md.Sign(u.key.Signer.Signer); err != nil {
		return nil, err
	}
	return md.ToBytes(false)
}

// upload puts the blob and posts the role version; it returns the role's HTTP status, 0
// if no answer came within 15 s.
func (u *uploaders) upload(ctx context.Context, r *replica, content []byte, name string, raw []byte) int {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sum := sha256.Sum256(content)
	do := func(method, path, ct string, body []byte) int {
		req, _ := http.NewRequestWithContext(ctx, method, r.base()+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+u.token)
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := do(http.MethodPut, "/api/v1/blobs/sha256:"+hex.EncodeToString(sum[:]), "application/octet-stream", content); st != http.StatusCreated && st != http.StatusOK {
		return st
	}
	return do(http.MethodPost, "/api/v1/projects/"+name+"/roles?wait=10s", api.MediaJSON, raw)
}

func (u *uploaders) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

func (u *uploaders) snapshot() map[string][]ack {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string][]ack{}
	for k, v := range u.acked {
		out[k] = append([]ack(nil), v...)
	}
	return out
}

func (u *uploaders) waitAcked(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged uploads", n), func() bool { return u.count() >= n })
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
}

// lockHolder returns the replica whose session holds the publisher lock, and the backend.
func lockHolder(ctx context.Context, db *store.DB, reps []*replica) (*replica, int32) {
	var pid int32
	var app string
	if err := db.Pool.QueryRow(ctx, lockHolderQuery).Scan(&pid, &app); err != nil {
		return nil, 0
	}
	for _, r := range reps {
		if strings.HasSuffix(app, fmt.Sprintf(" %d", r.pid())) {
			return r, pid
		}
	}
	return nil, 0
}

func headTimestamp(t *testing.T, db *store.DB) int64 {
	t.Helper()
	_, ts, err := db.Heads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// catchLockWithin bounds how long the fault helpers wait for a replica to be caught holding
// the publisher lock (uploads flow all the while, so one publishes every second or so).
const catchLockWithin = 3 * time.Minute

// freezeLockHolder SIGSTOPs a replica at an instant its session holds the publisher lock
// and returns it with the time until another replica published.
func freezeLockHolder(t *testing.T, db *store.DB, reps []*replica) (*replica, time.Duration) {
	t.Helper()
	ctx := context.Background()
	// Time-bound, not a count of tries: under load each try (queries, the 300 ms check)
	// takes longer and a replica may be between publishes for a while.
	for deadline := time.Now().Add(catchLockWithin); time.Now().Before(deadline); {
		r, backend := lockHolder(ctx, db, reps)
		if r == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		ts := headTimestamp(t, db)
		r.signal(t, syscall.SIGSTOP)
		at := time.Now()
		// A COMMIT already on the wire is still carried out: only a replica that still
		// holds the lock a moment later froze with it.
		time.Sleep(300 * time.Millisecond)
		if r2, b2 := lockHolder(ctx, db, reps); r2 != r || b2 != backend || headTimestamp(t, db) != ts {
			r.signal(t, syscall.SIGCONT) // it let go before the signal landed; try again
			continue
		}
		r.stopped.Store(true)
		var lockAt time.Duration
		for time.Since(at) < 60*time.Second {
			if r2, _ := lockHolder(ctx, db, reps); lockAt == 0 && r2 != nil && r2 != r {
				lockAt = time.Since(at)
				t.Logf("replica %s took the publisher lock %s after replica %s froze with it", r2.name, lockAt.Round(10*time.Millisecond), r.name)
			}
			if headTimestamp(t, db) > ts {
				return r, time.Since(at)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no replica published within 60 s of replica %s freezing with the publisher lock", r.name)
	}
	t.Fatalf("never caught a replica holding the publisher lock in %s", catchLockWithin)
	return nil, 0
}

// cutLockHolder stops the relay of replica c at an instant c holds the publisher lock,
// and returns when, and how long it took until another replica held the lock.
func cutLockHolder(t *testing.T, db *store.DB, reps []*replica, relay *relay) (time.Time, time.Duration) {
	t.Helper()
	ctx := context.Background()
	c := reps[2]
	for deadline := time.Now().Add(catchLockWithin); time.Now().Before(deadline); {
		r, backend := lockHolder(ctx, db, reps)
		if r != c {
			time.Sleep(time.Millisecond)
			continue
		}
		relay.freeze(true)
		at := time.Now()
		time.Sleep(300 * time.Millisecond)
		if r2, b2 := lockHolder(ctx, db, reps); r2 != c || b2 != backend {
			relay.freeze(false)
			continue
		}
		for time.Since(at) < 60*time.Second {
			if r2, _ := lockHolder(ctx, db, reps); r2 != nil && r2 != c {
				return at, time.Since(at)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no replica took the publisher lock within 60 s of its holder being cut off")
	}
	t.Fatalf("never caught replica c holding the publisher lock in %s", catchLockWithin)
	return time.Time{}, 0
}

// killLockHolder kills -9 the replica holding the publisher lock, trying for a while to
// catch one at it.
func killLockHolder(t *testing.T, db *store.DB, reps []*replica) *replica {
	t.Helper()
	for deadline := time.Now().Add(catchLockWithin); time.Now().Before(deadline); {
		if r, _ := lockHolder(context.Background(), db, reps); r != nil && r != reps[2] {
			r.stopped.Store(true)
			r.signal(t, syscall.SIGKILL)
			return r
		}
		time.Sleep(time.Millisecond)
	}
	reps[0].stopped.Store(true)
	reps[0].signal(t, syscall.SIGKILL)
	return reps[0]
}

// tsObservations records the timestamp versions a client alternating between two
// replicas sees.
type tsObservations struct {
	cutAt time.Time
	done  chan struct{}
	mu    sync.Mutex
	// back lists when the cut-off replica served a timestamp older than the newest seen;
	// lastOK when it last answered 200; after503 whether it answered 503 from then on.
	back   []time.Duration
	lastOK time.Duration
	served []string
}

func watchTimestamps(t *testing.T, good, cut *replica, cutAt time.Time, d time.Duration) *tsObservations {
	o := &tsObservations{cutAt: cutAt, done: make(chan struct{})}
	version := func(b []byte) int64 {
		var env struct {
			Signed struct {
				Version int64 `json:"version"`
			} `json:"signed"`
		}
		_ = json.Unmarshal(b, &env)
		return env.Signed.Version
	}
	go func() {
		defer close(o.done)
		var newest int64
		for time.Since(cutAt) < d {
			if st, b := good.get("/metadata/timestamp.json", 5*time.Second); st == http.StatusOK {
				newest = max(newest, version(b))
			}
			st, b := cut.get("/metadata/timestamp.json", 5*time.Second)
			at := time.Since(cutAt)
			o.mu.Lock()
			o.served = append(o.served, fmt.Sprintf("%s:%d", at.Round(100*time.Millisecond), st))
			if st == http.StatusOK {
				o.lastOK = at
				if v := version(b); v < newest {
					o.back = append(o.back, at)
				}
			}
			o.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return o
}

func (o *tsObservations) wait() { <-o.done }

// check: the cut-off replica served timestamps (possibly older than the other replica's)
// only within maxStaleness of its last confirmation (at most one poll before the cut),
// and 503 after.
func (o *tsObservations) check(t *testing.T, maxStaleness time.Duration) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	window := maxStaleness + 2*time.Second // + the head poll interval and scheduling slack
	if o.lastOK > window {
		t.Errorf("the cut-off replica served timestamp.json %s after losing the database, want at most %s: %v", o.lastOK, window, o.served)
	}
	for _, b := range o.back {
		if b > window {
			t.Errorf("a client moving between replicas saw the timestamp go back %s after the cut: %v", b, o.served)
		}
	}
	t.Logf("cut-off replica: last 200 for timestamp.json %s after the cut (limit %s), %d backward observations", o.lastOK.Round(10*time.Millisecond), maxStaleness, len(o.back))
}

// checkAcked: every acknowledged version is stored with the acknowledged bytes and
// published.
func checkAcked(t *testing.T, db *store.DB, acked map[string][]ack) {
	t.Helper()
	ctx := context.Background()
	for name, as := range acked {
		for _, a := range as {
			var sum []byte
			var snap *int64
			err := db.Pool.QueryRow(ctx, `SELECT sha256, snapshot_version FROM metadata WHERE role = $1 AND version = $2`, name, a.version).Scan(&sum, &snap)
			if err != nil || hex.EncodeToString(sum) != a.sha256 || snap == nil {
				t.Errorf("acknowledged %s version %d: stored %x, published in %v (%v)", name, a.version, sum, snap, err)
			}
		}
	}
}

// checkNoFork: the audit chain verifies, each snapshot and timestamp version was signed
// once and none is missing.
func checkNoFork(t *testing.T, db *store.DB) {
	t.Helper()
	var entries []api.LogEntry
	for after := int64(0); ; {
		page, err := db.AuditPage(context.Background(), after, 1000)
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
		t.Fatalf("audit chain: %v", err)
	}
	for _, role := range []string{tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		seen := map[int64]int{}
		var top int64
		for _, e := range entries {
			if e.Role == role {
				seen[e.Version]++
				top = max(top, e.Version)
			}
		}
		for v := int64(1); v <= top; v++ {
			if seen[v] != 1 {
				t.Errorf("%s version %d signed %d times in the audit log", role, v, seen[v])
			}
		}
	}
}

// checkReader: go-tuf, reading from base, finds each project's last acknowledged version's
// files.
func checkReader(t *testing.T, base string, rootJSON []byte, acked map[string][]ack) {
	t.Helper()
	cfg, err := config.New(base+"/metadata", rootJSON)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = base + "/targets"
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = t.TempDir(), t.TempDir()
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("go-tuf refresh from %s: %v", base, err)
	}
	for name, as := range acked {
		last := as[len(as)-1].version
		p := fmt.Sprintf("%s/%d.0/%s.tgz", name, last, name)
		ti, err := up.GetTargetInfo(p)
		if err != nil {
			t.Errorf("go-tuf from %s: %s: %v", base, p, err)
			continue
		}
		want := sha256.Sum256([]byte(fmt.Sprintf("%s release %d", name, last)))
		if !bytes.Equal(ti.Hashes["sha256"], want[:]) {
			t.Errorf("go-tuf from %s: %s has the wrong hash", base, p)
		}
	}
}
