package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testenv"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// TestRollingUpgrade upgrades a live repository from the previous release to this tree the
// way the Helm chart rolls it (docs/operations.md "Upgrades"), under a continuous upload
// load:
//
//  1. cairnd of the previous release creates the database (dev mode: ceremony, migrations
//     00001-00011) and serves; uploaders start;
//  2. this tree's `cairnd migrate` runs while it serves (the chart's pre-upgrade Job);
//  3. a second replica of the previous release starts on the migrated database (a pod of
//     the old ReplicaSet rescheduled mid-roll: it must start, and its own migration step
//     must accept a database newer than it knows);
//  4. this tree's cairnd starts with --no-migrate, and old and new replicas all take
//     uploads and serve clients, each running its publisher;
//  5. the old replicas are taken out of the rotation and stopped with SIGTERM; the load
//     goes on against the new one, then stops.
//
// Then: every acknowledged upload (201 published, or 202 stored) is published and its
// bytes are fetched through go-tuf from the new replica; every metadata version published
// before the roll is served by the new replica with the same bytes and the same audit
// log hash; no (role, version) ever had two contents, in the log or as seen by a poller of
// every replica's timestamp.json during the roll, and no replica's timestamp went back.
//
// The previous release is a documented commit (no release is tagged yet): Makefile
// PREVIOUS_RELEASE, the last commit before migration 00012 was added. `make
// previous-cairnd` builds it (CAIRN_PREVIOUS_CAIRND); `make test-upgrade` runs this test.
func TestRollingUpgrade(t *testing.T) {
	oldBin := previousCairnd(t)
	newBin := buildCairnd(t)
	u, drop, err := testdb.Create("e2e_upgrade")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	dir := t.TempDir()

	// 1. The previous release makes the database and serves.
	old1 := startProc(t, "old-1", oldBin, "serve", "--dev", "--data-dir", dir, "--database-url", u, "--snapshot-retention", "0")
	token, rootJSON := devCredentials(t, dir)
	// The replicas a client may reach (a Service's endpoints): the load and the poller
	// pick one per request.
	pool := &replicaPool{}
	pool.set(old1)
	poll := newTimestampPoller(pool)
	go poll.run()
	load := newUploadLoad(t, pool, token, 4)
	go load.run()
	load.waitAcked(t, 20, 30*time.Second)

	// What was published before the roll: every (role, version) in the audit log, and the
	// bytes the previous release serves for it.
	before := publishedMetadata(t, old1.url)
	t.Logf("before the roll: %d metadata versions published by the previous release, %d uploads acknowledged", len(before.entries), load.ackedCount())

	// 2. This tree migrates the database while the previous release serves.
	migrate := exec.Command(newBin, "migrate", "--database-url", u, "--log-level", "info")
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("cairnd migrate (this tree) under load: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "applied migration") {
		t.Fatalf("cairnd migrate applied no new migration: the previous release's schema is this tree's, so the test proves nothing\n%s", out)
	}
	load.waitMore(t, 10, 30*time.Second)

	// 3. A replica of the previous release starts on the migrated database, with the
	// online keys as a production replica has them (not --dev), and migrating on start.
	keys := onlineKeyFlags(dir)
	old2 := startProc(t, "old-2", oldBin, append([]string{"serve", "--database-url", u, "--blob-dir", filepath.Join(dir, "blobs"), "--snapshot-retention", "0"}, keys...)...)
	pool.set(old1, old2)
	load.waitMore(t, 10, 30*time.Second)

	// 4. This tree's replica joins, as the chart starts it after its migrate Job.
	new1 := startProc(t, "new-1", newBin, append([]string{"serve", "--no-migrate", "--database-url", u, "--blob-dir", filepath.Join(dir, "blobs"), "--snapshot-retention", "0"}, keys...)...)
	pool.set(old1, old2, new1)
	shared := map[string]int{}
	for _, r := range []*cairndProc{old1, old2, new1} {
		shared[r.url] = load.ackedBy(r.url)
	}
	load.waitMore(t, 40, 60*time.Second)
	for _, r := range []*cairndProc{old1, old2, new1} {
		if n := load.ackedBy(r.url) - shared[r.url]; n == 0 {
			t.Errorf("%s acknowledged no upload while old and new replicas shared the load", r.name)
		}
	}

	// 5. The old replicas leave the rotation and stop; the new one carries on alone.
	pool.set(new1)
	old1.stop(t)
	old2.stop(t)
	load.waitMore(t, 10, 30*time.Second)
	acked := load.stop(t)
	poll.stop()

	after := publishedMetadata(t, new1.url)
	for k, e := range before.entries {
		a, ok := after.entries[k]
		if !ok {
			t.Errorf("%s: in the audit log before the roll, not after", k)
			continue
		}
		if a.SHA256 != e.SHA256 || a.Hash != e.Hash {
			t.Errorf("%s: audit log entry changed in the roll: sha256 %s -> %s, hash %s -> %s", k, e.SHA256, a.SHA256, e.Hash, a.Hash)
		}
		if b, ok := before.bytes[k]; ok && !bytes.Equal(b, after.bytes[k]) {
			t.Errorf("%s: served bytes changed in the roll (%d bytes before, %d after)", k, len(b), len(after.bytes[k]))
		}
	}
	if len(before.bytes) == 0 {
		t.Fatal("no metadata bytes were fetched before the roll")
	}
	// One content per (role, version), seen by the poller on every replica, and no
	// replica's timestamp went back.
	if err := poll.check(); err != nil {
		t.Error(err)
	}
	for k, sum := range poll.seen() {
		if e, ok := after.entries[k]; ok && e.SHA256 != sum {
			t.Errorf("%s: a replica served sha256 %s during the roll, the audit log has %s", k, sum, e.SHA256)
		}
	}

	// Every acknowledged upload is published: go-tuf from the new replica finds each file
	// and downloads its bytes.
	cfg, err := config.New(new1.url+"/metadata", rootJSON)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = new1.url + "/targets"
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = t.TempDir(), t.TempDir()
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("go-tuf refresh from the upgraded replica: %v", err)
	}
	lost := 0
	for _, a := range acked {
		ti, err := up.GetTargetInfo(a.path)
		if err != nil {
			lost++
			t.Errorf("acknowledged upload %s (%d from %s) is not published: %v", a.path, a.status, a.via, err)
			continue
		}
		_, got, err := up.DownloadTarget(ti, filepath.Join(t.TempDir(), "f"), "")
		if err != nil || !bytes.Equal(got, a.content) {
			lost++
			t.Errorf("acknowledged upload %s: downloading through go-tuf: %v", a.path, err)
		}
	}
	t.Logf("after the roll: %d uploads acknowledged (%d by replicas of the previous release), %d lost; %d metadata versions compared byte for byte; %d timestamp readings",
		len(acked), load.ackedBy(old1.url)+load.ackedBy(old2.url), lost, len(before.bytes), poll.readings.Load())
}

// cairndProc is one cairnd process of the test.
type cairndProc struct {
	name   string
	url    string
	cmd    *exec.Cmd
	done   chan error
	stderr *syncBuffer
}

// startProc starts bin with args and --listen on a free port, waits until it answers,
// and kills it when the test ends if it still runs; its log is printed if the test fails.
func startProc(t *testing.T, name, bin string, args ...string) *cairndProc {
	t.Helper()
	addr := freeAddr(t)
	p := &cairndProc{name: name, url: "http://" + addr, done: make(chan error, 1), stderr: &syncBuffer{}}
	p.cmd = exec.Command(bin, append(args, "--listen", addr, "--log-level", "warn")...)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.stderr.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s (%s %s) exited while starting: %v\n%s", name, bin, strings.Join(args, " "), err, p.stderr.String())
		default:
		}
		if resp, err := http.Get(p.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not ready at %s after 60s\n%s", name, p.url, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM, as Kubernetes does, and wants a clean exit.
func (p *cairndProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stopping %s: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGTERM", p.name)
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// onlineKeyFlags gives a production replica the dev repository's online keys by URI, as
// an operator passes them (the chart's config file), instead of --dev.
func onlineKeyFlags(dir string) []string {
	keys := filepath.Join(dir, "keys")
	uri := func(role string) string {
		return (&url.URL{Scheme: "file", Path: filepath.Join(keys, role+".json"), RawQuery: "passphrase-file=" + url.QueryEscape(filepath.Join(keys, "passphrase"))}).String()
	}
	return []string{"--timestamp-key", uri(tufrepo.RoleTimestamp), "--snapshot-key", uri(tufrepo.RoleSnapshot), "--recently-claimed-key", uri(tufrepo.RoleRecentlyClaimed)}
}

// replicaPool is the set of replicas in the rotation; next picks them in turn.
type replicaPool struct {
	mu   sync.Mutex
	urls []string
	n    int
}

func (p *replicaPool) set(rs ...*cairndProc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urls = nil
	for _, r := range rs {
		p.urls = append(p.urls, r.url)
	}
}

func (p *replicaPool) next() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	return p.urls[p.n%len(p.urls)]
}

func (p *replicaPool) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.urls...)
}

// ackedUpload is an upload a replica acknowledged: 201 (published) or 202 (stored).
type ackedUpload struct {
	path    string
	content []byte
	status  int
	via     string
}

// uploadLoad runs uploaders, each with its own project, each uploading one new release
// file per role version, as fast as the replicas answer.
type uploadLoad struct {
	t       *testing.T
	pool    *replicaPool
	token   string
	workers int
	quit    chan struct{}
	wg      sync.WaitGroup

	mu    sync.Mutex
	acked []ackedUpload
	by    map[string]int
	errs  []error
	// faults are failed answers from replicas in the rotation (5xx, cut connections).
	faults []string
	more   chan struct{}
}

func newUploadLoad(t *testing.T, pool *replicaPool, token string, workers int) *uploadLoad {
	return &uploadLoad{t: t, pool: pool, token: token, workers: workers, quit: make(chan struct{}), by: map[string]int{}, more: make(chan struct{}, 1)}
}

func (l *uploadLoad) run() {
	for w := range l.workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := l.uploader(w); err != nil {
				l.mu.Lock()
				l.errs = append(l.errs, err)
				l.mu.Unlock()
			}
		}()
	}
}

// uploader creates project up<w> and uploads versions 2, 3, … of its role, each adding one
// file. An answer that does not say whether the version was stored (a connection cut by a
// stopping replica, a 5xx) is settled by reading the project from another replica.
func (l *uploadLoad) uploader(w int) error {
	key := testrepo.NewKey(l.t, tufrepo.KeyEd25519)
	name := fmt.Sprintf("up%d", w)
	req := api.CreateProjectRequest{Name: name, Threshold: 1, Keys: []api.Key{key.API()}, Metadata: testrepo.Sign(l.t, testrepo.Role(1, time.Now().Add(tufrepo.ProjectRoleExpiry)), key)}
	body, _ := json.Marshal(req)
	if st, b, err := l.send(l.pool.next(), http.MethodPost, "/api/v1/projects", body); err != nil || st != http.StatusCreated {
		return fmt.Errorf("creating %s: %d %s %v", name, st, b, err)
	}
	var files []testrepo.File
	version := int64(1)
	for i := 0; ; i++ {
		select {
		case <-l.quit:
			return nil
		default:
		}
		f := testrepo.File{Path: fmt.Sprintf("%s/%d/%s-%d.tgz", name, i, name, i), Content: []byte(fmt.Sprintf("release %d of %s, uploaded during the upgrade", i, name))}
		via := l.pool.next()
		sum := sha256.Sum256(f.Content)
		if st, b, err := l.send(via, http.MethodPut, "/api/v1/blobs/sha256:"+hex.EncodeToString(sum[:]), f.Content); err != nil || (st != http.StatusCreated && st != http.StatusOK) {
			if slices.Contains(l.pool.all(), via) {
				l.mu.Lock()
				l.faults = append(l.faults, fmt.Sprintf("PUT blob via %s: %d %.300s %v", via, st, b, err))
				l.mu.Unlock()
			}
			continue // the blob is not there: nothing was uploaded (the next try is a new file)
		}
		raw := testrepo.Sign(l.t, testrepo.Role(version+1, time.Now().Add(30*24*time.Hour), append(files, f)...), key)
		st, b, err := l.send(via, http.MethodPost, "/api/v1/projects/"+name+"/roles?wait=30s", raw)
		switch {
		case err == nil && (st == http.StatusCreated || st == http.StatusAccepted):
			var res api.SubmitResult
			if json.Unmarshal(b, &res) != nil || res.RoleVersion != version+1 {
				return fmt.Errorf("%s version %d: %d %s", name, version+1, st, b)
			}
			l.mu.Lock()
			l.acked = append(l.acked, ackedUpload{path: f.Path, content: f.Content, status: st, via: via})
			l.by[via]++
			l.mu.Unlock()
			select {
			case l.more <- struct{}{}:
			default:
			}
			files, version = append(files, f), version+1
		case err == nil && st >= 400 && st < 500:
			return fmt.Errorf("%s version %d refused by %s: %d %s", name, version+1, via, st, b)
		default:
			// A replica in the rotation must answer: a 5xx or a cut connection from one is
			// what a failed roll looks like. One that has left the rotation may cut it.
			if slices.Contains(l.pool.all(), via) {
				l.mu.Lock()
				l.faults = append(l.faults, fmt.Sprintf("%s version %d via %s: %d %.300s %v", name, version+1, via, st, b, err))
				l.mu.Unlock()
			}
			// Stored or not? Ask until a replica answers; a stored version carries the file.
			v, err := l.roleVersion(name)
			if err != nil {
				return err
			}
			if v == version+1 {
				files, version = append(files, f), v
			} else if v != version {
				return fmt.Errorf("%s is at role version %d, the uploader is at %d", name, v, version)
			}
		}
	}
}

func (l *uploadLoad) roleVersion(name string) (int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, b, err := l.send(l.pool.next(), http.MethodGet, "/api/v1/projects/"+name, nil)
		var p api.Project
		if err == nil && st == http.StatusOK && json.Unmarshal(b, &p) == nil {
			return p.RoleVersion, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("no replica answered GET /api/v1/projects/%s for 30s", name)
}

func (l *uploadLoad) send(base, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	if body != nil {
		req.Header.Set("Content-Type", api.MediaJSON)
		if method == http.MethodPut {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (l *uploadLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *uploadLoad) ackedBy(url string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.by[url]
}

// waitAcked waits until n uploads in all were acknowledged; waitMore until n more were.
func (l *uploadLoad) waitAcked(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		l.mu.Lock()
		got, errs := len(l.acked), errors.Join(l.errs...)
		l.mu.Unlock()
		if errs != nil {
			t.Fatalf("uploads: %v", errs)
		}
		if got >= n {
			return
		}
		select {
		case <-l.more:
		case <-deadline:
			l.mu.Lock()
			faults := strings.Join(l.faults, "\n")
			l.mu.Unlock()
			t.Fatalf("%d uploads acknowledged after %s, want %d; failed answers from replicas in the rotation:\n%s", got, limit, n, faults)
		}
	}
}

func (l *uploadLoad) waitMore(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	l.waitAcked(t, l.ackedCount()+n, limit)
}

// stop ends the load and returns the acknowledged uploads.
func (l *uploadLoad) stop(t *testing.T) []ackedUpload {
	t.Helper()
	close(l.quit)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := errors.Join(l.errs...); err != nil {
		t.Fatalf("uploads: %v", err)
	}
	for _, f := range l.faults {
		t.Errorf("an upload failed at a replica in the rotation: %s", f)
	}
	return l.acked
}

// timestampPoller reads timestamp.json from every replica in the rotation, again and
// again, and records what each version's bytes were and what each replica served last.
type timestampPoller struct {
	pool     *replicaPool
	quit     chan struct{}
	done     chan struct{}
	readings atomic.Int64

	mu     sync.Mutex
	bySum  map[string]string // "timestamp@v" -> sha256
	last   map[string]int64  // replica -> last version served
	faults []error
}

func newTimestampPoller(pool *replicaPool) *timestampPoller {
	return &timestampPoller{pool: pool, quit: make(chan struct{}), done: make(chan struct{}), bySum: map[string]string{}, last: map[string]int64{}}
}

func (p *timestampPoller) run() {
	defer close(p.done)
	for {
		select {
		case <-p.quit:
			return
		case <-time.After(20 * time.Millisecond):
		}
		for _, base := range p.pool.all() {
			resp, err := http.Get(base + "/metadata/timestamp.json")
			if err != nil {
				continue // a replica going away
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				continue
			}
			var md struct {
				Signed struct {
					Version int64 `json:"version"`
				} `json:"signed"`
			}
			if err := json.Unmarshal(b, &md); err != nil {
				continue
			}
			p.readings.Add(1)
			k := metaKey(tufrepo.RoleTimestamp, md.Signed.Version)
			p.mu.Lock()
			if prev, ok := p.bySum[k]; ok && prev != sha(b) {
				p.faults = append(p.faults, fmt.Errorf("%s: two contents served (%s, then %s from %s)", k, prev, sha(b), base))
			}
			p.bySum[k] = sha(b)
			if md.Signed.Version < p.last[base] {
				p.faults = append(p.faults, fmt.Errorf("%s served timestamp %d after %d", base, md.Signed.Version, p.last[base]))
			}
			p.last[base] = md.Signed.Version
			p.mu.Unlock()
		}
	}
}

func (p *timestampPoller) stop() {
	close(p.quit)
	<-p.done
}

func (p *timestampPoller) check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.faults...)
}

func (p *timestampPoller) seen() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.bySum))
	for k, v := range p.bySum {
		out[k] = v
	}
	return out
}

func metaKey(role string, version int64) string { return role + "@" + strconv.FormatInt(version, 10) }

// published is what a replica says was published: the audit log entries by (role,
// version), and the served bytes of each.
type published struct {
	entries map[string]api.LogEntry
	bytes   map[string][]byte
}

// publishedMetadata reads the whole audit log from base, checks that it is one chain with
// one content per (role, version) and contiguous snapshot and timestamp versions, and
// fetches every version's bytes by its consistent-snapshot name, checked against the log.
func publishedMetadata(t *testing.T, base string) published {
	t.Helper()
	var entries []api.LogEntry
	for after := ""; ; {
		resp, err := http.Get(base + "/api/v1/log?limit=1000&after=" + after)
		if err != nil {
			t.Fatal(err)
		}
		var page api.LogPage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/api/v1/log: %d %v", base, resp.StatusCode, err)
		}
		entries = append(entries, page.Entries...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if _, err := tufrepo.VerifyAuditChain(nil, entries); err != nil {
		t.Fatalf("audit log of %s: %v", base, err)
	}
	p := published{entries: map[string]api.LogEntry{}, bytes: map[string][]byte{}}
	maxV := map[string]int64{}
	for _, e := range entries {
		k := metaKey(e.Role, e.Version)
		if prev, ok := p.entries[k]; ok {
			t.Errorf("%s: in the audit log twice (sha256 %s and %s): a fork", k, prev.SHA256, e.SHA256)
		}
		p.entries[k] = e
		maxV[e.Role] = max(maxV[e.Role], e.Version)
	}
	for _, role := range []string{tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		for v := int64(1); v <= maxV[role]; v++ {
			if _, ok := p.entries[metaKey(role, v)]; !ok {
				t.Errorf("%s version %d missing from the audit log (latest %d)", role, v, maxV[role])
			}
		}
	}
	for k, e := range p.entries {
		resp, err := http.Get(fmt.Sprintf("%s/metadata/%d.%s.json", base, e.Version, e.Role))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET %d.%s.json from %s: %d %v", k, e.Version, e.Role, base, resp.StatusCode, err)
			continue
		}
		if sha(b) != e.SHA256 {
			t.Errorf("%s: %s serves sha256 %s, the audit log says %s", k, base, sha(b), e.SHA256)
		}
		p.bytes[k] = b
	}
	return p
}

// previousCairnd is the cairnd of the previous release that `make previous-cairnd` built
// ($CAIRN_PREVIOUS_CAIRND).
func previousCairnd(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CAIRN_PREVIOUS_CAIRND")
	if bin == "" {
		testenv.MissingTool(t, "CAIRN_PREVIOUS_CAIRND is not set: run `make test-upgrade` (builds cairnd of the previous release into .cache/previous)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("CAIRN_PREVIOUS_CAIRND=%s: %v (run `make previous-cairnd`)", bin, err)
	}
	return bin
}

// devCredentials reads the admin token and root.json that `cairnd serve --dev` wrote into
// its data directory dir.
func devCredentials(t *testing.T, dir string) (token string, rootJSON []byte) {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	rootJSON, err = os.ReadFile(filepath.Join(dir, "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(tok)), rootJSON
}
