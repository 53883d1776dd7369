package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/attest/attesttest"
	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// TestRollingUpgradeOwnTargetsDuringRoll is what happens when a feature that publishes new
// signed content is turned on during the roll (docs/operations.md "Upgrades", step 5):
// this tree lists the Sigstore trusted root target and delegates the attestation index
// roles from the top recently-claimed node, which the previous release's publisher builds
// without them. A new replica with --sigstore-trusted-root publishes both; then only the
// old replica publishes (a new project, signed into the top node) and both vanish from
// what clients can resolve. After the roll, the new release's next publish (an upload to
// an existing project, which does not touch the top node) finds the top node without them
// and signs it again (tufrepo ownContentMissing); a go-tuf client that cached every step
// goes on with no error. Without that check they stayed missing until the node expired.
func TestRollingUpgradeOwnTargetsDuringRoll(t *testing.T) {
	oldBin := previousCairnd(t)
	newBin := buildCairnd(t)
	u, drop, err := testdb.Create("e2e_upgrade_own")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	dir := t.TempDir()
	blobDir := filepath.Join(dir, "blobs")
	old1 := startProc(t, "old-1", oldBin, "serve", "--dev", "--data-dir", dir, "--database-url", u)
	token, rootJSON := devCredentials(t, dir)
	at := func(p *cairndProc) *testrepo.Repo {
		return &testrepo.Repo{Running: &daemon.Running{URL: p.url}, AdminToken: token}
	}
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	at(old1).CreateProject(t, token, "hello", 1, []*testrepo.Key{key}, key)
	f1 := testrepo.File{Path: "hello/1.0/hello-1.0.tgz", Content: []byte("hello 1.0")}
	at(old1).PutBlob(t, token, f1.Content)
	if resp := at(old1).Submit(t, token, "hello", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(24*time.Hour), f1), key)); resp.Status != http.StatusCreated {
		t.Fatalf("hello 1.0 via the previous release: %d %s", resp.Status, resp.Body)
	}
	// Each step below has one publishing replica, so that which release signs the top node
	// is not left to the race for the publisher lock: they are the interleavings a roll
	// with overlapping replicas can produce.
	old1.stop(t)
	if out, err := exec.Command(newBin, "migrate", "--database-url", u).CombinedOutput(); err != nil {
		t.Fatalf("cairnd migrate: %v\n%s", err, out)
	}

	sig := attesttest.New(t)
	trFile := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(trFile, sig.TrustedRoot(t), 0o600); err != nil {
		t.Fatal(err)
	}
	newArgs := append([]string{"serve", "--no-migrate", "--database-url", u, "--blob-dir", blobDir, "--sigstore-trusted-root", trFile}, onlineKeyFlags(dir)...)
	new1 := startProc(t, "new-1", newBin, newArgs...)
	api, err := cairnclient.NewAPI(new1.url, cairnclient.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	subj := attesttest.File("hello-1.0.tgz", f1.Content)
	if _, err := api.PostAttestation(context.Background(), subj.SHA256, sig.Bundle(t, "alice@hello.dev", "https://accounts.example.com", attesttest.Options{}, subj)); err != nil {
		t.Fatal(err)
	}
	at(new1).CreateProject(t, token, "kick-new", 1, []*testrepo.Key{key}, key)

	// One go-tuf client, its cache kept across every step, as a user's.
	cache := t.TempDir()
	own := []string{tufrepo.SigstoreTrustedRootTarget, tufrepo.AttestationIndexTarget(subj.SHA256)}
	resolve := func(step, base string, want bool) {
		t.Helper()
		trusted := rootJSON
		if b, err := os.ReadFile(filepath.Join(cache, "root.json")); err == nil {
			trusted = b
		}
		cfg, err := config.New(base+"/metadata", trusted)
		if err != nil {
			t.Fatal(err)
		}
		cfg.LocalMetadataDir, cfg.LocalTargetsDir, cfg.RemoteTargetsURL = cache, t.TempDir(), base+"/targets"
		up, err := updater.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := up.Refresh(); err != nil {
			t.Fatalf("%s: go-tuf refresh with its cache: %v", step, err)
		}
		for _, p := range own {
			if _, err := up.GetTargetInfo(p); (err == nil) != want {
				t.Errorf("%s: %s resolvable = %v, want %v (%v)", step, p, err == nil, want, err)
			}
		}
	}
	resolve("the new replica published the trusted root and the index", new1.url, true)

	// Only an old replica publishes: the new one is gone for a moment (a crash, a node
	// drain) while a pod of the old ReplicaSet runs, and a project is created.
	new1.stop(t)
	old2 := startProc(t, "old-2", oldBin, append([]string{"serve", "--no-migrate", "--database-url", u, "--blob-dir", blobDir}, onlineKeyFlags(dir)...)...)
	at(old2).CreateProject(t, token, "kick-old", 1, []*testrepo.Key{key}, key)
	resolve("the previous release signed the top recently-claimed node", old2.url, false)

	// The roll ends: a new replica, the old one stopped. Its next publish, for an upload to
	// an existing project, finds the top node without the own content and signs it again.
	old2.stop(t)
	new2 := startProc(t, "new-2", newBin, newArgs...)
	f2 := testrepo.File{Path: "hello/2.0/hello-2.0.tgz", Content: []byte("hello 2.0")}
	at(new2).PutBlob(t, token, f2.Content)
	if resp := at(new2).Submit(t, token, "hello", testrepo.Sign(t, testrepo.Role(3, time.Now().Add(24*time.Hour), f1, f2), key)); resp.Status != http.StatusCreated {
		t.Fatalf("hello 2.0 via the new release: %d %s", resp.Status, resp.Body)
	}
	resolve("after the roll, the new release published an upload to an existing project", new2.url, true)
	if !strings.Contains(new2.stderr.String(), "lacks the repository's own targets") {
		t.Errorf("new-2 did not say why it signed the top node again:\n%s", new2.stderr.String())
	}
}
