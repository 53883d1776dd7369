package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// tamperProxy stands between clients and cairnd, as an attacker on the network (or in
// the server) does: intercept answers a request itself when it returns true.
type tamperProxy struct {
	*httptest.Server
	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool
	paths     []string
	hits      atomic.Int64 // requests intercept answered
}

func newTamperProxy(t *testing.T, upstream string) *tamperProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &tamperProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.paths = append(p.paths, r.URL.Path)
		f := p.intercept
		p.mu.Unlock()
		if f != nil && f(w, r) {
			p.hits.Add(1)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *tamperProxy) set(f func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intercept, p.paths = f, nil
	p.hits.Store(0)
}

func (p *tamperProxy) requested() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

// cairnGet is `cairn get` of a target path against base, with one persistent home (so
// the client keeps what it trusted); it returns the exit code and stderr.
type cairnGet struct {
	cl *cairnCLI
}

func newCairnGet(t *testing.T, rootJSON []byte, base string) *cairnGet {
	t.Helper()
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, rootJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	cl := newCLI(t, "")
	cl.ok(t, "init", "--server", base, "--root", rootFile)
	return &cairnGet{cl: cl}
}

func (g *cairnGet) get(t *testing.T, path string) (int, []byte, string) {
	t.Helper()
	parts := strings.Split(path, "/")
	out := t.TempDir()
	code, _, stderr := g.cl.run(t, "get", parts[0]+"@"+parts[1], "--file", parts[2], "--output-dir", out)
	if code != 0 {
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("cairn get wrote %d files although verification failed", len(entries))
		}
		return code, nil, stderr
	}
	b, err := os.ReadFile(filepath.Join(out, parts[2]))
	if err != nil {
		t.Fatal(err)
	}
	return code, b, stderr
}

func (g *cairnGet) mustGet(t *testing.T, path string, want []byte) {
	t.Helper()
	code, got, stderr := g.get(t, path)
	if code != 0 || !bytes.Equal(got, want) {
		t.Fatalf("cairn get %s: exit %d, %q: %s", path, code, got, stderr)
	}
}

func (g *cairnGet) mustRefuse(t *testing.T, path string, exit int, says ...string) {
	t.Helper()
	code, _, stderr := g.get(t, path)
	if code != exit {
		t.Fatalf("cairn get %s: exit %d, want %d: %s", path, code, exit, stderr)
	}
	for _, s := range says {
		if !strings.Contains(stderr, s) {
			t.Fatalf("cairn get %s refused (exit %d) without saying %q: %s", path, code, s, stderr)
		}
	}
}

// releaseDemo3 publishes demo version 4 (a third release), so the trusted version 3 of
// demo is no longer the newest.
func releaseDemo3(t *testing.T, w *world) testrepo.File {
	t.Helper()
	f3 := testrepo.File{Path: "demo/3.0.0/demo-3.0.0.tar.gz", Content: []byte("the third release of demo")}
	w.r.PutBlob(t, w.r.AdminToken, f3.Content)
	if resp := w.r.Submit(t, w.r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(4, time.Now().Add(90*24*time.Hour), w.f1, w.f2, f3), w.alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 3: %d %s", resp.Status, resp.Body)
	}
	return f3
}

func servedTimestamp(t *testing.T, r *testrepo.Repo) *metadata.Metadata[metadata.TimestampType] {
	t.Helper()
	ts, err := metadata.Timestamp().FromBytes(r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestCairnGetUsesMerkleSnapshot: cairn get proves each role against the timestamp's tree
// and never downloads snapshot.json; a refresh after a release fetches the timestamp, the
// proofs and the one changed role. go-tuf and tuf-js read the classic snapshot of the very
// same publish.
func TestCairnGetUsesMerkleSnapshot(t *testing.T) {
	w := newWorld(t)
	p := newTamperProxy(t, w.r.URL)
	g := newCairnGet(t, w.r.RootJSON, p.URL)
	g.mustGet(t, w.f2.Path, w.f2.Content)
	f3 := releaseDemo3(t, w)
	p.set(nil)
	g.mustGet(t, f3.Path, f3.Content)
	var proofs, roles int
	for _, path := range p.requested() {
		switch {
		case strings.Contains(path, "snapshot.json"):
			t.Fatalf("cairn get downloaded %s on the Merkle path", path)
		case strings.HasPrefix(path, "/api/v1/merkle/"):
			proofs++
		case strings.HasPrefix(path, "/metadata/") && path != "/metadata/timestamp.json" && !strings.HasSuffix(path, ".root.json"):
			roles++
			if !strings.HasSuffix(path, ".demo.json") {
				t.Errorf("the refresh downloaded %s, which did not change", path)
			}
		}
	}
	if proofs == 0 || roles != 1 {
		t.Fatalf("refresh: %d proofs, %d role downloads (want >0 and 1): %v", proofs, roles, p.requested())
	}
	for _, c := range tufClients(t, w.r.RootJSON, w.r.URL) {
		if got, err := c.get(t, f3.Path); err != nil || !bytes.Equal(got, f3.Content) {
			t.Fatalf("%s with the classic snapshot: %v", c.name, err)
		}
	}
}

// TestMerkleMixAndMatchRefused: the network answers the proof of demo for the current
// timestamp with the proof of an older tree (where demo was version 3), relabelled as the
// current one: it does not lead to the root the verified timestamp signed.
func TestMerkleMixAndMatchRefused(t *testing.T) {
	w := newWorld(t)
	p := newTamperProxy(t, w.r.URL)
	g := newCairnGet(t, w.r.RootJSON, p.URL)
	old := servedTimestamp(t, w.r).Signed.Version
	f3 := releaseDemo3(t, w)
	cur := servedTimestamp(t, w.r)
	curRoot, err := merkle.ParseField(cur.Signed.UnrecognizedFields[merkle.FieldName])
	if err != nil {
		t.Fatal(err)
	}
	p.set(func(rw http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != fmt.Sprintf("/api/v1/merkle/%d/demo", cur.Signed.Version) {
			return false
		}
		var proof api.MerkleProof
		if err := json.Unmarshal(w.r.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/merkle/%d/demo", old), "", "", nil).Body, &proof); err != nil || proof.Version != 3 {
			t.Errorf("old proof: %+v %v", proof, err)
		}
		proof.Timestamp, proof.Size = cur.Signed.Version, curRoot.Size
		writeTestJSON(rw, proof)
		return true
	})
	g.mustRefuse(t, f3.Path, 1, "does not lead to the root that timestamp version", "demo version 3")
	if p.hits.Load() == 0 {
		t.Fatal("the proxy never answered the old proof: the attack did not happen")
	}
}

func writeTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// forgedTree is what an attacker holding the online timestamp key (a server compromise)
// can serve: a timestamp that commits to a tree of its choosing, with proofs for it.
type forgedTree struct {
	ts     []byte
	tsv    int64
	leaves []merkle.Leaf
	tree   *merkle.Tree
}

// forgeTree signs timestamp version current+1 over the stored leaves as edit changes them.
func forgeTree(t *testing.T, w *world, edit func([]merkle.Leaf) []merkle.Leaf) *forgedTree {
	t.Helper()
	ctx := context.Background()
	snapV, rows, err := w.r.DB.MerkleState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([]merkle.Leaf, len(rows))
	for i, r := range rows {
		leaves[i] = r.Leaf
	}
	leaves = edit(leaves)
	hs := make([]merkle.Hash, len(leaves))
	for i, l := range leaves {
		if hs[i], err = l.Hash(); err != nil {
			t.Fatal(err)
		}
	}
	tree := merkle.Build(snapV, hs)
	cur := servedTimestamp(t, w.r)
	snapRaw := w.r.Do(t, http.MethodGet, fmt.Sprintf("/metadata/%d.snapshot.json", snapV), "", "", nil).Body
	signed, err := tufrepo.BuildMerkleTimestamp(cur.Signed.Version+1, snapV, snapRaw, time.Now().Add(time.Hour), tree.Root())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tufrepo.SignEnvelope(ctx, signed, w.r.OfflineSigner(t, tufrepo.RoleTimestamp))
	if err != nil {
		t.Fatal(err)
	}
	return &forgedTree{ts: raw, tsv: cur.Signed.Version + 1, leaves: leaves, tree: tree}
}

// serve answers timestamp.json and the proofs of the forged tree.
func (f *forgedTree) serve(t *testing.T) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/metadata/timestamp.json" {
			_, _ = w.Write(f.ts)
			return true
		}
		role, ok := strings.CutPrefix(r.URL.Path, fmt.Sprintf("/api/v1/merkle/%d/", f.tsv))
		if !ok {
			return false
		}
		for i, l := range f.leaves {
			if l.Role != role {
				continue
			}
			size, hs, err := f.tree.ProofAt(f.tree.Version(), uint64(i))
			if err != nil {
				t.Error(err)
			}
			p := api.MerkleProof{Timestamp: f.tsv, Role: l.Role, Version: l.Version, Length: l.Length, SHA256: hex.EncodeToString(l.SHA256[:]), Index: uint64(i), Size: size}
			for _, h := range hs {
				p.Hashes = append(p.Hashes, hex.EncodeToString(h[:]))
			}
			writeTestJSON(w, p)
			return true
		}
		w.Header().Set("Content-Type", api.MediaProblem)
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(api.Problem{Code: api.CodeRoleNotInTree, Status: http.StatusNotFound, Detail: "no leaf"})
		return true
	}
}

// leafOf is the leaf of a stored role version.
func leafOf(t *testing.T, w *world, role string, version int64) merkle.Leaf {
	t.Helper()
	var raw []byte
	if err := w.r.DB.Pool.QueryRow(context.Background(), `SELECT raw FROM metadata WHERE role = $1 AND version = $2`, role, version).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	l, err := tufrepo.MerkleLeafOf(role, version, int64(len(raw)), shaBytes(raw))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestMerkleRollbackRefused: with the timestamp key, the attacker signs a tree that lists
// demo at version 2 (a genuine, maintainer-signed older version) to a client that trusted
// version 3: refused as a rollback.
func TestMerkleRollbackRefused(t *testing.T) {
	w := newWorld(t)
	p := newTamperProxy(t, w.r.URL)
	g := newCairnGet(t, w.r.RootJSON, p.URL)
	g.mustGet(t, w.f2.Path, w.f2.Content)
	v2 := leafOf(t, w, "demo", 2)
	f := forgeTree(t, w, func(ls []merkle.Leaf) []merkle.Leaf {
		for i := range ls {
			if ls[i].Role == "demo" {
				ls[i] = v2
			}
		}
		return ls
	})
	p.set(f.serve(t))
	g.mustRefuse(t, w.f1.Path, 4, "older than version 3", "rollback")
	if p.hits.Load() == 0 {
		t.Fatal("the forged tree was never served")
	}
	// The same forged tree to a client that never saw demo is accepted as far as the tree
	// goes (version 2 is genuine): what protects is the version the client remembers.
	fresh := newCairnGet(t, w.r.RootJSON, p.URL)
	fresh.mustGet(t, w.f1.Path, w.f1.Content)
}

// TestMerkleTreeDroppingRoleRefused: a tree without demo (the server says it has no leaf),
// or a proof of another role in its place.
func TestMerkleTreeDroppingRoleRefused(t *testing.T) {
	w := newWorld(t)
	p := newTamperProxy(t, w.r.URL)
	g := newCairnGet(t, w.r.RootJSON, p.URL)
	g.mustGet(t, w.f2.Path, w.f2.Content)
	f := forgeTree(t, w, func(ls []merkle.Leaf) []merkle.Leaf {
		out := ls[:0]
		for _, l := range ls {
			if l.Role != "demo" {
				out = append(out, l)
			}
		}
		return out
	})
	p.set(f.serve(t))
	g.mustRefuse(t, w.f1.Path, 4, `no leaf for role "demo"`)

	// Against the honest timestamp: the proof of demo's delegator in place of demo's.
	cur := servedTimestamp(t, w.r).Signed.Version
	p.set(func(rw http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != fmt.Sprintf("/api/v1/merkle/%d/demo", cur) {
			return false
		}
		_, _ = rw.Write(w.r.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/merkle/%d/targets", cur), "", "", nil).Body)
		return true
	})
	fresh := newCairnGet(t, w.r.RootJSON, p.URL)
	fresh.mustRefuse(t, w.f1.Path, 4, `asked for the leaf of role "demo"`)
	if p.hits.Load() == 0 {
		t.Fatal("the substituted proof was never served")
	}
}

// TestMerkleTreeStrippedRefused: whoever holds the online timestamp key signs a newer
// timestamp without the Merkle field, so that clients fall back to the classic snapshot,
// which has no leaf hashes. A client that verified a tree before refuses it; one that never
// saw a tree follows it, as standard clients do; --classic-snapshot is the way out that the
// refusal names.
func TestMerkleTreeStrippedRefused(t *testing.T) {
	w := newWorld(t)
	p := newTamperProxy(t, w.r.URL)
	g := newCairnGet(t, w.r.RootJSON, p.URL)
	g.mustGet(t, w.f2.Path, w.f2.Content)

	cur := servedTimestamp(t, w.r)
	snapV := cur.Signed.Meta["snapshot.json"].Version
	snapRaw := w.r.Do(t, http.MethodGet, fmt.Sprintf("/metadata/%d.snapshot.json", snapV), "", "", nil).Body
	signed, err := tufrepo.BuildTimestamp(cur.Signed.Version+1, snapV, snapRaw, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stripped, err := tufrepo.SignEnvelope(context.Background(), signed, w.r.OfflineSigner(t, tufrepo.RoleTimestamp))
	if err != nil {
		t.Fatal(err)
	}
	p.set(func(rw http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/metadata/timestamp.json" {
			return false
		}
		_, _ = rw.Write(stripped)
		return true
	})
	g.mustRefuse(t, w.f1.Path, 4, "has no Merkle snapshot", "--classic-snapshot")
	if p.hits.Load() == 0 {
		t.Fatal("the stripped timestamp was never served")
	}
	fresh := newCairnGet(t, w.r.RootJSON, p.URL)
	fresh.mustGet(t, w.f1.Path, w.f1.Content)
	parts := strings.Split(w.f1.Path, "/")
	if code, _, stderr := g.cl.run(t, "get", parts[0]+"@"+parts[1], "--file", parts[2], "--output-dir", t.TempDir(), "--classic-snapshot"); code != 0 {
		t.Fatalf("cairn get --classic-snapshot after the refusal: exit %d: %s", code, stderr)
	}
}

// TestSameVersionRoleSwapRefused: someone with a maintainer's key and the network signs a
// second, different demo version 3 of the same length (one file's hash replaced) and serves
// it in place of the published one. The classic snapshot lists version and length, not
// hashes: go-tuf with an empty cache accepts the swap and installs the attacker's file.
// cairn get checks the bytes against the Merkle leaf and refuses.
func TestSameVersionRoleSwapRefused(t *testing.T) {
	w := newWorld(t)
	evil := bytes.Repeat([]byte("E"), len(w.f2.Content))
	var published []byte
	if err := w.r.DB.Pool.QueryRow(context.Background(), `SELECT raw FROM metadata WHERE role = 'demo' AND version = 3`).Scan(&published); err != nil {
		t.Fatal(err)
	}
	var pub struct {
		Signed struct {
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(published, &pub); err != nil {
		t.Fatal(err)
	}
	// snapshot pins the length: bob's ECDSA signatures vary in length, so sign until the
	// swapped role has exactly the published one's.
	var swapped []byte
	for range 64 {
		swapped = testrepo.Sign(t, testrepo.Role(3, pub.Signed.Expires, w.f1, testrepo.File{Path: w.f2.Path, Content: evil}), w.bob)
		if len(swapped) == len(published) {
			break
		}
	}
	if len(swapped) != len(published) || bytes.Equal(swapped, published) {
		t.Fatalf("could not make a different demo version 3 of %d bytes (got %d)", len(published), len(swapped))
	}
	p := newTamperProxy(t, w.r.URL)
	p.set(func(rw http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.URL.Path == "/metadata/3.demo.json":
			_, _ = rw.Write(swapped)
		case strings.HasPrefix(r.URL.Path, "/targets/demo/2.0.0/"+sha(evil)):
			_, _ = rw.Write(evil)
		default:
			return false
		}
		return true
	})
	// go-tuf, fresh: the gap the leaf hash closes.
	gotuf := tufClients(t, w.r.RootJSON, p.URL)[0]
	if got, err := gotuf.get(t, w.f2.Path); err != nil || !bytes.Equal(got, evil) {
		t.Logf("go-tuf through the classic snapshot: %v (got %d bytes)", err, len(got))
	} else {
		t.Logf("go-tuf through the classic snapshot installed the attacker's file, as expected without hashes in snapshot")
	}
	g := newCairnGet(t, w.r.RootJSON, p.URL)
	g.mustRefuse(t, w.f2.Path, 1, "the role was swapped after it was published")
	if p.hits.Load() == 0 {
		t.Fatal("the swapped role was never served")
	}
}

// appendForgedAudit appends e to the audit log as a server-side attacker can: with the
// chain's hashes computed, so the chain itself still verifies.
func appendForgedAudit(t *testing.T, w *world, e api.LogEntry) {
	t.Helper()
	ctx := context.Background()
	var seq int64
	var prev []byte
	if err := w.r.DB.Pool.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev); err != nil {
		t.Fatal(err)
	}
	e.Seq, e.PrevHash, e.Time = seq+1, hex.EncodeToString(prev), tufrepo.AuditTime(time.Now())
	h := tufrepo.AuditHash(prev, e)
	sum, _ := hex.DecodeString(e.SHA256)
	if _, err := w.r.DB.Pool.Exec(ctx, `INSERT INTO audit_log (seq, action, role, version, length, sha256, snapshot, at, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		e.Seq, e.Action, e.Role, e.Version, e.Length, sum, e.Snapshot, e.Time, prev, h); err != nil {
		t.Fatal(err)
	}
}

// publishForgedTimestamp stores a forged timestamp as published (served by version) and
// logs it.
func publishForgedTimestamp(t *testing.T, w *world, f *forgedTree, snap int64) {
	t.Helper()
	md, err := metadata.Timestamp().FromBytes(f.ts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.DB.Pool.Exec(context.Background(), `INSERT INTO metadata (role, version, raw, length, sha256, expires, action, snapshot_version) VALUES ('timestamp', $1, $2, $3, $4, $5, 'signed', $6)`,
		f.tsv, f.ts, len(f.ts), shaBytes(f.ts), md.Signed.Expires, snap); err != nil {
		t.Fatal(err)
	}
	appendForgedAudit(t, w, api.LogEntry{Action: api.ActionSigned, Role: tufrepo.RoleTimestamp, Version: f.tsv, Length: int64(len(f.ts)), SHA256: sha(f.ts), Snapshot: snap})
}

func auditLog(t *testing.T, a *cairnclient.API) []api.LogEntry {
	t.Helper()
	var all []api.LogEntry
	for after := int64(0); ; {
		page, err := a.Log(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Entries) == 0 {
			return all
		}
		if _, err := tufrepo.VerifyAuditChain(nil, append(all, page.Entries...)); err != nil {
			t.Fatalf("the audit log chain: %v", err)
		}
		all = append(all, page.Entries...)
		after = page.Entries[len(page.Entries)-1].Seq
	}
}

// TestMerkleAuditFindsBackwardTrees: the auditor rebuilds every timestamp's tree from the
// audit log. A timestamp signed (with the timestamp key) over a tree that rolls demo back
// from version 3 to 2 does not match the log; an attacker who also logs demo version 2
// after version 3, so that the next forged tree matches, is caught by the log going back.
func TestMerkleAuditFindsBackwardTrees(t *testing.T) {
	w := newWorld(t)
	a, err := cairnclient.NewAPI(w.r.URL)
	if err != nil {
		t.Fatal(err)
	}
	clean, err := a.AuditMerkle(context.Background(), auditLog(t, a))
	if err != nil {
		t.Fatal(err)
	}
	if len(clean.Problems) != 0 || clean.Trees < 3 || clean.WithoutTree != 0 {
		t.Fatalf("audit of an honest repository: %+v", clean)
	}

	snap, _, err := w.r.DB.MerkleState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v2 := leafOf(t, w, "demo", 2)
	back := func(ls []merkle.Leaf) []merkle.Leaf {
		for i := range ls {
			if ls[i].Role == "demo" {
				ls[i] = v2
			}
		}
		return ls
	}
	f1 := forgeTree(t, w, back)
	publishForgedTimestamp(t, w, f1, snap)
	// The attacker rewrites history going forward: demo version 2 logged again, and a
	// second forged timestamp whose tree now matches the log.
	appendForgedAudit(t, w, api.LogEntry{Action: api.ActionAccepted, Role: "demo", Version: 2, Length: v2.Length, SHA256: hex.EncodeToString(v2.SHA256[:]), Snapshot: snap})
	f2 := forgeTree(t, w, back)
	f2.tsv = f1.tsv + 1
	md, _ := metadata.Timestamp().FromBytes(f2.ts)
	signed, err := tufrepo.BuildMerkleTimestamp(f2.tsv, snap, w.r.Do(t, http.MethodGet, fmt.Sprintf("/metadata/%d.snapshot.json", snap), "", "", nil).Body, md.Signed.Expires, f2.tree.Root())
	if err != nil {
		t.Fatal(err)
	}
	if f2.ts, err = tufrepo.SignEnvelope(context.Background(), signed, w.r.OfflineSigner(t, tufrepo.RoleTimestamp)); err != nil {
		t.Fatal(err)
	}
	publishForgedTimestamp(t, w, f2, snap)

	rep, err := a.AuditMerkle(context.Background(), auditLog(t, a))
	if err != nil {
		t.Fatal(err)
	}
	var mismatch, wentBack bool
	for _, p := range rep.Problems {
		switch {
		case p.Role == tufrepo.RoleTimestamp && p.Version == f1.tsv && p.Code == cairnclient.ExitHashMismatch && strings.Contains(p.Detail, "the audit log's role versions make"):
			mismatch = true
		case p.Role == "demo" && p.Version == 2 && p.Code == cairnclient.ExitPolicy && strings.Contains(p.Detail, "after version 3"):
			wentBack = true
		default:
			t.Errorf("unexpected problem: %+v", p)
		}
	}
	if !mismatch || !wentBack {
		t.Fatalf("audit of the forged trees: %+v", rep.Problems)
	}
}
