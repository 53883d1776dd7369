package web_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

var dbURL string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, "web", &dbURL)) }

// world is a Cairn repository with project "demo" (releases 1.0.0, yanked with a hostile
// reason and hostile custom data, and 2.0.0) and project "duo" (two maintainers,
// threshold 2) with a pending proposal.
type world struct {
	r        *testrepo.Repo
	alice    *testrepo.Key
	bob      *testrepo.Key
	f1, f2   testrepo.File
	rootHash string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	u, drop, err := testdb.Create("web_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	w := &world{r: r, alice: testrepo.NewKey(t, tufrepo.KeyEd25519), bob: testrepo.NewKey(t, tufrepo.KeyECDSAP256),
		f1: testrepo.File{Path: "demo/1.0.0/demo-1.0.0.tar.gz", Content: []byte("the first release of demo")},
		f2: testrepo.File{Path: "demo/2.0.0/demo-2.0.0.tar.gz", Content: []byte("the second release of demo, bigger")},
	}
	sum := sha256.Sum256(r.RootJSON)
	w.rootHash = hex.EncodeToString(sum[:])
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{w.alice}, w.alice)
	exp := time.Now().Add(90 * 24 * time.Hour)
	r.PutBlob(t, r.AdminToken, w.f1.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, exp, w.f1), w.alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 1: %d %s", resp.Status, resp.Body)
	}
	r.PutBlob(t, r.AdminToken, w.f2.Content)
	md := testrepo.Role(3, exp, w.f1, w.f2)
	custom, _ := json.Marshal(map[string]any{"version": "1.0.0", "yanked": true, "yank_reason": hostile, "note": hostile})
	rm := json.RawMessage(custom)
	md.Signed.Targets[w.f1.Path].Custom = &rm
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, md, w.alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 2: %d %s", resp.Status, resp.Body)
	}
	r.CreateProject(t, r.AdminToken, "duo", 2, []*testrepo.Key{w.alice, w.bob}, w.alice, w.bob)
	f3 := testrepo.File{Path: "duo/0.1/duo-0.1.zip", Content: []byte("duo zero point one")}
	r.PutBlob(t, r.AdminToken, f3.Content)
	if resp := r.Submit(t, r.AdminToken, "duo", testrepo.Sign(t, testrepo.Role(2, exp, f3), w.alice)); resp.Status != http.StatusAccepted {
		t.Fatalf("proposal: %d %s", resp.Status, resp.Body)
	}
	return w
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pin pins the repository's root in the browser through the first-visit flow at base.
func (w *world) pin(t *testing.T, b *browser, base string) {
	t.Helper()
	b.open(t, base+"/trust")
	b.el(t, "#offered")
	b.check(t, b.el(t, "#pin-hash").Input(w.rootHash))
	b.check(t, b.el(t, "#pin-button").Click("left", 1))
	b.waitFor(t, `() => document.querySelector('#pin-status').textContent.includes('is pinned')`)
}

func testrepoFile(path string, content []byte) testrepo.File {
	return testrepo.File{Path: path, Content: content}
}

// testrepoRole signs the next version of demo's role with alice, keeping 1.0.0's custom data.
func testrepoRole(t *testing.T, w *world, version int64, files ...testrepo.File) []byte {
	t.Helper()
	md := testrepo.Role(version, time.Now().Add(90*24*time.Hour), files...)
	custom, _ := json.Marshal(map[string]any{"version": "1.0.0", "yanked": true, "yank_reason": hostile, "note": hostile})
	rm := json.RawMessage(custom)
	md.Signed.Targets[w.f1.Path].Custom = &rm
	return testrepo.Sign(t, md, w.alice)
}
