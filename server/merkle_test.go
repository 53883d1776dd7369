package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// merkleRoot reads the tree a served timestamp commits to.
func merkleRoot(t *testing.T, r *testrepo.Repo, path string) (int64, *metadata.Metadata[metadata.SnapshotType], merkle.Root) {
	t.Helper()
	ts, err := metadata.Timestamp().FromBytes(r.Do(t, http.MethodGet, path, "", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	root, err := merkle.ParseField(ts.Signed.UnrecognizedFields[merkle.FieldName])
	if err != nil {
		t.Fatalf("timestamp %d: %v", ts.Signed.Version, err)
	}
	sv := ts.Signed.Meta["snapshot.json"].Version
	snap, err := metadata.Snapshot().FromBytes(r.Do(t, http.MethodGet, fmt.Sprintf("/metadata/%d.snapshot.json", sv), "", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	return ts.Signed.Version, snap, root
}

// checkProofs fetches the proof of every role the snapshot lists from srv and checks it
// against root, the snapshot's version and length, and the sha256 of the served bytes.
func checkProofs(t *testing.T, srv *testrepo.Repo, tsv int64, snap *metadata.Metadata[metadata.SnapshotType], root merkle.Root) {
	t.Helper()
	for name, mf := range snap.Signed.Meta {
		role := strings.TrimSuffix(name, ".json")
		resp := srv.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/merkle/%d/%s", tsv, role), "", "", nil)
		if resp.Status != http.StatusOK {
			t.Fatalf("proof of %s at timestamp %d: %d %s", role, tsv, resp.Status, resp.Body)
		}
		var p api.MerkleProof
		if err := json.Unmarshal(resp.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Role != role || p.Version != mf.Version || p.Length != mf.Length || p.Size != root.Size || p.Timestamp != tsv {
			t.Fatalf("proof of %s: %+v; snapshot says version %d length %d, tree size %d", role, p, mf.Version, mf.Length, root.Size)
		}
		raw := srv.Do(t, http.MethodGet, fmt.Sprintf("/metadata/%d.%s.json", mf.Version, role), "", "", nil).Body
		sum32 := sha256.Sum256(raw)
		sum := hex.EncodeToString(sum32[:])
		if p.SHA256 != sum {
			t.Fatalf("proof of %s says sha256 %s, the served bytes are %s", role, p.SHA256, sum)
		}
		leaf := merkle.Leaf{Role: p.Role, Version: p.Version, Length: p.Length}
		b, _ := hex.DecodeString(p.SHA256)
		copy(leaf.SHA256[:], b)
		hs := make([]merkle.Hash, len(p.Hashes))
		for i, h := range p.Hashes {
			b, _ := hex.DecodeString(h)
			copy(hs[i][:], b)
		}
		if err := merkle.VerifyInclusion(root, p.Index, leaf, hs); err != nil {
			t.Fatalf("proof of %s at timestamp %d: %v", role, tsv, err)
		}
	}
}

// TestMerkleProofs: every timestamp carries the tree of the snapshot's roles; the
// publishing replica and a replica that only serves answer proofs that verify, for the
// current timestamp and older ones, and refuse what they cannot prove with specific codes.
func TestMerkleProofs(t *testing.T) {
	u, drop, err := testdb.Create("server_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.MaxBlobSize = 1 << 20 })
	replica := testrepo.Boot(t, u, func(c *daemon.Config) { c.DataDir = r.Dir; c.NoPublisher = true })
	t.Cleanup(drop)

	tsv, snap, root := merkleRoot(t, r, "/metadata/timestamp.json")
	if root.Size != 3 {
		t.Fatalf("bootstrap tree has %d leaves, want 3 (targets, claimed, recently-claimed)", root.Size)
	}
	checkProofs(t, r, tsv, snap, root)
	first := struct {
		ts   int64
		snap *metadata.Metadata[metadata.SnapshotType]
		root merkle.Root
	}{tsv, snap, root}

	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	for _, name := range []string{"alpha", "beta", "gamma"} {
		r.CreateProject(t, r.AdminToken, name, 1, []*testrepo.Key{alice}, alice)
	}
	f := testrepo.File{Path: "beta/1.0/beta.tar.gz", Content: []byte("beta one")}
	r.PutBlob(t, r.AdminToken, f.Content)
	if resp := r.Submit(t, r.AdminToken, "beta", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(30*24*time.Hour), f), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.Status, resp.Body)
	}
	tsv, snap, root = merkleRoot(t, r, "/metadata/timestamp.json")
	if root.Size != uint64(len(snap.Signed.Meta)) {
		t.Fatalf("tree of %d leaves for %d roles", root.Size, len(snap.Signed.Meta))
	}
	for _, srv := range []*testrepo.Repo{r, replica} {
		checkProofs(t, srv, tsv, snap, root)
		// The first timestamp's tree is still kept and still proves its own leaves.
		checkProofs(t, srv, first.ts, first.snap, first.root)
	}

	for _, tc := range []struct {
		path   string
		status int
		code   api.Code
	}{
		{fmt.Sprintf("/api/v1/merkle/%d/nosuchproject", tsv), http.StatusNotFound, api.CodeRoleNotInTree},
		// alpha did not exist at the first timestamp: its tree has no leaf for it.
		{fmt.Sprintf("/api/v1/merkle/%d/alpha", first.ts), http.StatusNotFound, api.CodeRoleNotInTree},
		{fmt.Sprintf("/api/v1/merkle/%d/alpha", tsv+1000), http.StatusNotFound, api.CodeNotFound},
		{"/api/v1/merkle/0/alpha", http.StatusBadRequest, api.CodeBadRequest},
		{"/api/v1/merkle/x/alpha", http.StatusBadRequest, api.CodeBadRequest},
		{fmt.Sprintf("/api/v1/merkle/%d/snapshot", tsv), http.StatusBadRequest, api.CodeBadRequest},
		{fmt.Sprintf("/api/v1/merkle/%d/Alpha", tsv), http.StatusBadRequest, api.CodeBadRequest},
	} {
		for _, srv := range []*testrepo.Repo{r, replica} {
			resp := srv.Do(t, http.MethodGet, tc.path, "", "", nil)
			if resp.Status != tc.status || resp.Problem().Code != tc.code {
				t.Errorf("GET %s: %d %s, want %d %s", tc.path, resp.Status, resp.Body, tc.status, tc.code)
			}
		}
	}
	resp := r.Do(t, http.MethodGet, fmt.Sprintf("/api/v1/merkle/%d/beta", tsv), "", "", nil)
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("Cache-Control %q: a proof for a timestamp version never changes", cc)
	}
}
