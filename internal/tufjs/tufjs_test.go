package tufjs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/cairn-dev/cairn/internal/testenv"
)

const (
	demoPath = "demo/1.0/hello.txt"
	demoRole = "demo"
)

var demoContent = []byte("hello from a tiny TUF repository\n")

// testRepo is a minimal consistent-snapshot TUF repository: top-level roles plus one
// delegation targets → demo for "demo/*/*", served over HTTP from an in-memory map.
type testRepo struct {
	t    testing.TB
	keys map[string]ed25519.PrivateKey

	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	demo      *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]

	mu    sync.Mutex
	files map[string][]byte // URL path → body
	saved []byte            // scratch for cases that replay old bytes

	targetURL string // URL path of the demo target
}

func newKey(t testing.TB) (ed25519.PrivateKey, *metadata.Key) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return priv, key
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	exp := time.Now().Add(24 * time.Hour).UTC()
	r := &testRepo{t: t, keys: map[string]ed25519.PrivateKey{}, files: map[string][]byte{}}

	r.root = metadata.Root(exp)
	r.root.Signed.ConsistentSnapshot = true
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		priv, key := newKey(t)
		r.keys[role] = priv
		if err := r.root.Signed.AddKey(key, role); err != nil {
			t.Fatal(err)
		}
	}

	demoPriv, demoKey := newKey(t)
	r.keys[demoRole] = demoPriv
	demoKeyID, err := demoKey.ID()
	if err != nil {
		t.Fatal(err)
	}
	r.targets = metadata.Targets(exp)
	r.targets.Signed.Delegations = &metadata.Delegations{
		Keys: map[string]*metadata.Key{demoKeyID: demoKey},
		Roles: []metadata.DelegatedRole{{
			Name: demoRole, KeyIDs: []string{demoKeyID}, Threshold: 1, Paths: []string{"demo/*/*"},
		}},
	}

	r.demo = metadata.Targets(exp)
	tf, err := metadata.TargetFile().FromBytes(demoPath, demoContent, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	r.demo.Signed.Targets[demoPath] = tf
	r.targetURL = "/targets/demo/1.0/" + hex.EncodeToString(tf.Hashes["sha256"]) + ".hello.txt"
	r.files[r.targetURL] = demoContent

	r.snapshot = metadata.Snapshot(exp)
	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(1)
	r.snapshot.Signed.Meta[demoRole+".json"] = metadata.MetaFile(1)
	r.timestamp = metadata.Timestamp(exp)
	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(1)

	r.publish()
	return r
}

type signable interface {
	Sign(signature.Signer) (*metadata.Signature, error)
	ClearSignatures()
	ToBytes(bool) ([]byte, error)
}

func (r *testRepo) sign(md signable, keyName string, key ed25519.PrivateKey) []byte {
	r.t.Helper()
	signer, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		r.t.Fatal(err)
	}
	md.ClearSignatures()
	if _, err := md.Sign(signer); err != nil {
		r.t.Fatalf("sign %s: %v", keyName, err)
	}
	b, err := md.ToBytes(false)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// publish signs every role with its own key and serves the current versions.
func (r *testRepo) publish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files["/metadata/1.root.json"] = r.sign(r.root, metadata.ROOT, r.keys[metadata.ROOT])
	r.files[metaPath(r.targets.Signed.Version, metadata.TARGETS)] = r.sign(r.targets, metadata.TARGETS, r.keys[metadata.TARGETS])
	r.files[metaPath(r.demo.Signed.Version, demoRole)] = r.sign(r.demo, demoRole, r.keys[demoRole])
	r.files[metaPath(r.snapshot.Signed.Version, metadata.SNAPSHOT)] = r.sign(r.snapshot, metadata.SNAPSHOT, r.keys[metadata.SNAPSHOT])
	r.files["/metadata/timestamp.json"] = r.sign(r.timestamp, metadata.TIMESTAMP, r.keys[metadata.TIMESTAMP])
}

func metaPath(version int64, role string) string {
	return "/metadata/" + strconv.FormatInt(version, 10) + "." + role + ".json"
}

func (r *testRepo) set(path string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = body
}

func (r *testRepo) get(path string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[path]
}

func (r *testRepo) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body := r.get(req.URL.Path)
	if body == nil {
		http.NotFound(w, req)
		return
	}
	w.Write(body)
}

// goTUFGet downloads target with go-tuf v2's updater, as a second opinion.
func goTUFGet(srvURL string, rootJSON []byte, cache, out, target string) ([]byte, error) {
	cfg, err := config.New(srvURL+"/metadata", rootJSON)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = cache
	cfg.LocalTargetsDir = out
	cfg.RemoteTargetsURL = srvURL + "/targets"
	up, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := up.Refresh(); err != nil {
		return nil, err
	}
	ti, err := up.GetTargetInfo(target)
	if err != nil {
		return nil, err
	}
	_, data, err := up.DownloadTarget(ti, filepath.Join(out, filepath.Base(target)), "")
	return data, err
}

func ensureOrSkip(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		testenv.MissingTool(t, "node not installed; the tuf-js client needs Node.js 20.17+")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGetAgainstTinyRepo(t *testing.T) {
	dir := ensureOrSkip(t)

	cases := []struct {
		name string
		// prime, if set, changes the repository before a first run that must succeed
		// with the same cache directory as the checked run.
		prime     func(r *testRepo)
		attack    func(r *testRepo)
		wantExit  int // 0: success
		wantClass string
		goTUFErr  error
	}{
		{name: "good download"},
		{
			name: "tampered target",
			attack: func(r *testRepo) {
				bad := bytes.Clone(demoContent)
				bad[0] ^= 0xff // same length, different hash
				r.set(r.targetURL, bad)
			},
			wantExit: ExitHashMismatch, wantClass: "LengthOrHashMismatchError",
			goTUFErr: &metadata.ErrLengthOrHashMismatch{},
		},
		{
			name: "project role signed by undelegated key",
			attack: func(r *testRepo) {
				rogue, _ := newKey(r.t)
				r.set(metaPath(r.demo.Signed.Version, demoRole), r.sign(r.demo, "rogue", rogue))
			},
			wantExit: ExitSignature, wantClass: "UnsignedMetadataError",
			goTUFErr: &metadata.ErrUnsignedMetadata{},
		},
		{
			name: "snapshot signed by a key root does not list",
			attack: func(r *testRepo) {
				rogue, _ := newKey(r.t)
				r.set(metaPath(r.snapshot.Signed.Version, metadata.SNAPSHOT), r.sign(r.snapshot, "rogue", rogue))
			},
			wantExit: ExitSignature, wantClass: "UnsignedMetadataError",
			goTUFErr: &metadata.ErrUnsignedMetadata{},
		},
		{
			name: "expired project role",
			attack: func(r *testRepo) {
				r.demo.Signed.Expires = time.Now().Add(-time.Hour).UTC()
				r.set(metaPath(r.demo.Signed.Version, demoRole), r.sign(r.demo, demoRole, r.keys[demoRole]))
			},
			wantExit: ExitPolicy, wantClass: "ExpiredMetadataError",
			goTUFErr: &metadata.ErrExpiredMetadata{},
		},
		{
			name:     "project role missing",
			attack:   func(r *testRepo) { r.set(metaPath(r.demo.Signed.Version, demoRole), nil) },
			wantExit: ExitOther, wantClass: "DownloadHTTPError",
			goTUFErr: &metadata.ErrDownloadHTTP{},
		},
		{
			name: "timestamp rollback",
			prime: func(r *testRepo) {
				r.saved = r.get("/metadata/timestamp.json") // version 1
				r.timestamp.Signed.Version = 2
				r.publish()
			},
			attack:   func(r *testRepo) { r.set("/metadata/timestamp.json", r.saved) },
			wantExit: ExitPolicy, wantClass: "BadVersionError",
			goTUFErr: &metadata.ErrBadVersionNumber{},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			r := newTestRepo(t)
			srv := httptest.NewServer(r)
			defer srv.Close()
			rootJSON := r.get("/metadata/1.root.json")
			tmp := t.TempDir()
			rootFile := filepath.Join(tmp, "root.json")
			if err := os.WriteFile(rootFile, rootJSON, 0o644); err != nil {
				t.Fatal(err)
			}
			jsOpts := Options{
				MetadataURL: srv.URL + "/metadata",
				TargetsURL:  srv.URL + "/targets",
				Root:        rootFile,
				CacheDir:    filepath.Join(tmp, "js-cache"),
				Targets:     []string{demoPath},
				Dir:         dir,
			}
			goCache, goOut := filepath.Join(tmp, "go-cache"), filepath.Join(tmp, "go-out")
			for _, d := range []string{goCache, goOut} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}

			if tc.prime != nil {
				tc.prime(r)
				jsOpts.OutDir = filepath.Join(tmp, "js-prime")
				if _, err := Get(ctx, jsOpts); err != nil {
					t.Fatalf("tuf-js priming run: %v", err)
				}
				if _, err := goTUFGet(srv.URL, rootJSON, goCache, goOut, demoPath); err != nil {
					t.Fatalf("go-tuf priming run: %v", err)
				}
				os.Remove(filepath.Join(goOut, "hello.txt"))
			}
			if tc.attack != nil {
				tc.attack(r)
			}

			jsOpts.OutDir = filepath.Join(tmp, "js-out")
			res, err := Get(ctx, jsOpts)
			goData, goErr := goTUFGet(srv.URL, rootJSON, goCache, goOut, demoPath)

			if tc.wantExit == 0 {
				if err != nil {
					t.Fatalf("tuf-js: %v", err)
				}
				if len(res.Targets) != 1 {
					t.Fatalf("tuf-js: got %d results, want 1", len(res.Targets))
				}
				got := res.Targets[0]
				sum := sha256.Sum256(demoContent)
				if got.Path != demoPath || got.Length != int64(len(demoContent)) || got.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("tuf-js result = %+v", got)
				}
				if want := filepath.Join(jsOpts.OutDir, "hello.txt"); got.File != want {
					t.Errorf("tuf-js file = %s, want %s", got.File, want)
				}
				data, rerr := os.ReadFile(got.File)
				if rerr != nil || !bytes.Equal(data, demoContent) {
					t.Errorf("tuf-js wrote %q (%v), want %q", data, rerr, demoContent)
				}
				if goErr != nil || !bytes.Equal(goData, demoContent) {
					t.Errorf("go-tuf: data %q, err %v", goData, goErr)
				}
				return
			}

			t.Logf("tuf-js: %v; go-tuf: %v", err, goErr)
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("tuf-js: err = %v, want *Failure", err)
			}
			if f.ExitCode != tc.wantExit || f.Class != tc.wantClass {
				t.Errorf("tuf-js: exit %d class %s (%s), want exit %d class %s", f.ExitCode, f.Class, f.Message, tc.wantExit, tc.wantClass)
			}
			if len(res.Targets) != 0 {
				t.Errorf("tuf-js: reported targets %+v after failure", res.Targets)
			}
			if entries, _ := os.ReadDir(jsOpts.OutDir); len(entries) != 0 {
				t.Errorf("tuf-js: out dir not empty after failure: %v", entries)
			}
			if !errors.Is(goErr, tc.goTUFErr) {
				t.Errorf("go-tuf: err = %v, want %T", goErr, tc.goTUFErr)
			}
			if _, serr := os.Stat(filepath.Join(goOut, "hello.txt")); serr == nil {
				t.Errorf("go-tuf wrote the target despite %v", goErr)
			}
		})
	}
}

func TestGetErrors(t *testing.T) {
	dir := ensureOrSkip(t)
	ctx := context.Background()
	tmp := t.TempDir()

	// Bad usage: no target paths.
	_, err := Get(ctx, Options{MetadataURL: "http://127.0.0.1:1/m", TargetsURL: "http://127.0.0.1:1/t",
		Root: filepath.Join(tmp, "root.json"), CacheDir: filepath.Join(tmp, "c"), OutDir: filepath.Join(tmp, "o"), Dir: dir})
	var f *Failure
	if !errors.As(err, &f) || f.ExitCode != ExitUsage || f.Class != "UsageError" {
		t.Errorf("no targets: err = %v, want usage failure", err)
	}

	// A path no role delegates or lists.
	r := newTestRepo(t)
	srv := httptest.NewServer(r)
	defer srv.Close()
	rootFile := filepath.Join(tmp, "root.json")
	if err := os.WriteFile(rootFile, r.get("/metadata/1.root.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Get(ctx, Options{MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
		Root: rootFile, CacheDir: filepath.Join(tmp, "c"), OutDir: filepath.Join(tmp, "o"),
		Targets: []string{"demo/1.0/missing.txt"}, Dir: dir})
	if !errors.As(err, &f) || f.ExitCode != ExitNotFound {
		t.Errorf("missing target: err = %v, want exit %d", err, ExitNotFound)
	}
}

// BenchmarkGet measures one cold client run (fresh cache: root, timestamp, snapshot,
// targets, demo and the target fetched and verified), node start-up included.
func BenchmarkGet(b *testing.B) {
	dir, err := Ensure(context.Background())
	if err != nil {
		b.Skip(err)
	}
	r := newTestRepo(b)
	srv := httptest.NewServer(r)
	defer srv.Close()
	tmp := b.TempDir()
	rootFile := filepath.Join(tmp, "root.json")
	if err := os.WriteFile(rootFile, r.get("/metadata/1.root.json"), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		sub := filepath.Join(tmp, strconv.Itoa(i))
		if _, err := Get(context.Background(), Options{MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
			Root: rootFile, CacheDir: filepath.Join(sub, "c"), OutDir: filepath.Join(sub, "o"), Targets: []string{demoPath}, Dir: dir}); err != nil {
			b.Fatal(err)
		}
	}
}
