package web_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// goTUFRepo is a TUF repository built with go-tuf's metadata API, independent of Cairn:
// targets delegates to
//   - "a" (paths a/*) → "a1" (a/1/*) → "a11" (a/1/1/*): a three-level delegation tree;
//   - "bins" (paths bins/*) → 16 classic hash bins bins-0 … bins-f (path_hash_prefixes);
//   - "sb" (paths s/*) → succinct hash bins (TAP 15) sbin-0 … sbin-3 (2 bits).
//
// It is served from its own origin with CORS headers, so the browser fetches across
// origins as it would from any public repository.
type goTUFRepo struct {
	URL      string // metadata base URL
	RootHash string // sha256 of 1.root.json
	Roles    []string
	dir      string
}

type tufKey struct {
	key    *metadata.Key
	signer signature.Signer
}

func newTUFKey(t *testing.T) tufKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	return tufKey{key: k, signer: s}
}

func (k tufKey) id(t *testing.T) string {
	id, err := k.key.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// hostile is put into custom data and target paths: the browser must show it as text.
const hostile = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">\"'\u202Egpj.exe"

// buildGoTUFRepo writes and serves the repository. breakSig names a role whose second
// signature (by a second trusted key; threshold 1) is corrupted: the role still verifies,
// and the broken signature must be flagged. failRole names a role whose only signature is
// corrupted: it must fail to verify.
func buildGoTUFRepo(t *testing.T, breakSig, failRole string) *goTUFRepo {
	t.Helper()
	dir := t.TempDir()
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	rootKey, tsKey, snapKey, targKey := newTUFKey(t), newTUFKey(t), newTUFKey(t), newTUFKey(t)
	delKey, delKey2 := newTUFKey(t), newTUFKey(t)

	root := metadata.Root(exp)
	for role, k := range map[string]tufKey{"root": rootKey, "timestamp": tsKey, "snapshot": snapKey, "targets": targKey} {
		if err := root.Signed.AddKey(k.key, role); err != nil {
			t.Fatal(err)
		}
	}
	roles := map[string]*metadata.Metadata[metadata.TargetsType]{}
	signers := map[string][]tufKey{}
	order := []string{}
	newRole := func(name string) *metadata.Metadata[metadata.TargetsType] {
		md := metadata.Targets(exp)
		roles[name] = md
		order = append(order, name)
		return md
	}
	addTarget := func(md *metadata.Metadata[metadata.TargetsType], path string, custom bool) {
		content := []byte("content of " + path)
		tf, err := metadata.TargetFile().FromBytes(path, content, "sha256")
		if err != nil {
			t.Fatal(err)
		}
		if custom {
			raw, _ := json.Marshal(map[string]string{"note": hostile})
			rm := json.RawMessage(raw)
			tf.Custom = &rm
		}
		md.Signed.Targets[path] = tf
	}
	delegate := func(parent *metadata.Metadata[metadata.TargetsType], name string, paths []string, prefixes []string, keys ...tufKey) {
		if parent.Signed.Delegations == nil {
			parent.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
		}
		dr := metadata.DelegatedRole{Name: name, Threshold: 1, Paths: paths, PathHashPrefixes: prefixes}
		for _, k := range keys {
			parent.Signed.Delegations.Keys[k.id(t)] = k.key
			dr.KeyIDs = append(dr.KeyIDs, k.id(t))
		}
		parent.Signed.Delegations.Roles = append(parent.Signed.Delegations.Roles, dr)
		signers[name] = keys
	}

	targets := newRole("targets")
	signers["targets"] = []tufKey{targKey}
	addTarget(targets, "top.txt", true)
	// Three levels: a → a1 → a11.
	delegate(targets, "a", []string{"a/*"}, nil, delKey)
	a := newRole("a")
	addTarget(a, "a/x.txt", false)
	delegate(a, "a1", []string{"a/1/*"}, nil, delKey, delKey2)
	a1 := newRole("a1")
	addTarget(a1, "a/1/y.txt", false)
	delegate(a1, "a11", []string{"a/1/1/*"}, nil, delKey)
	a11 := newRole("a11")
	addTarget(a11, "a/1/1/z.txt", true)
	// Classic hash bins.
	delegate(targets, "bins", []string{"bins/*"}, nil, delKey)
	bins := newRole("bins")
	for i := 0; i < 16; i++ {
		name := fmt.Sprintf("bins-%x", i)
		delegate(bins, name, nil, []string{fmt.Sprintf("%x", i)}, delKey)
		newRole(name)
	}
	for i := 0; i < 8; i++ {
		p := fmt.Sprintf("bins/file-%d.bin", i)
		sum := sha256.Sum256([]byte(p))
		addTarget(roles[fmt.Sprintf("bins-%x", sum[0]>>4)], p, false)
	}
	// Succinct hash bins.
	delegate(targets, "sb", []string{"s/*"}, nil, delKey)
	sb := newRole("sb")
	sb.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{delKey.id(t): delKey.key},
		SuccinctRoles: &metadata.SuccinctRoles{KeyIDs: []string{delKey.id(t)}, Threshold: 1, BitLength: 2, NamePrefix: "sbin"}}
	for _, name := range sb.Signed.Delegations.SuccinctRoles.GetRoles() {
		newRole(name)
		signers[name] = []tufKey{delKey}
	}
	addTarget(roles[sb.Signed.Delegations.SuccinctRoles.GetRolesForTarget("s/one.txt")[0].Name], "s/one.txt", false)

	// Sign and write every targets role, then snapshot, timestamp and root.
	snap := metadata.Snapshot(exp)
	write := func(name string, version int64, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.%s.json", version, name)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range order {
		md := roles[name]
		for _, k := range signers[name] {
			if _, err := md.Sign(k.signer); err != nil {
				t.Fatal(err)
			}
		}
		switch name {
		case breakSig:
			md.Signatures[len(md.Signatures)-1].Signature[0] ^= 0xff
		case failRole:
			for i := range md.Signatures {
				md.Signatures[i].Signature[0] ^= 0xff
			}
		}
		b, err := md.ToBytes(false)
		if err != nil {
			t.Fatal(err)
		}
		write(name, md.Signed.Version, b)
		snap.Signed.Meta[name+".json"] = &metadata.MetaFiles{Version: md.Signed.Version}
	}
	if _, err := snap.Sign(snapKey.signer); err != nil {
		t.Fatal(err)
	}
	sb2, _ := snap.ToBytes(false)
	write("snapshot", snap.Signed.Version, sb2)
	ts := metadata.Timestamp(exp)
	ts.Signed.Meta["snapshot.json"] = &metadata.MetaFiles{Version: snap.Signed.Version}
	if _, err := ts.Sign(tsKey.signer); err != nil {
		t.Fatal(err)
	}
	tb, _ := ts.ToBytes(false)
	if err := os.WriteFile(filepath.Join(dir, "timestamp.json"), tb, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Sign(rootKey.signer); err != nil {
		t.Fatal(err)
	}
	rb, _ := root.ToBytes(false)
	write("root", 1, rb)
	if err := os.WriteFile(filepath.Join(dir, "root.json"), rb, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(rb)

	fs := http.StripPrefix("/metadata/", http.FileServer(http.Dir(dir)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if !strings.HasPrefix(r.URL.Path, "/metadata/") {
			http.NotFound(w, r)
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &goTUFRepo{URL: srv.URL + "/metadata/", RootHash: hex.EncodeToString(sum[:]), Roles: order, dir: dir}
}
