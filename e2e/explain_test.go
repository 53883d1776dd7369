package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestExplainRecentlyClaimedThenClaimed: 'cairn explain' shows a fresh downloader the
// chain that vouches for a release, first through recently-claimed (online) and, once the
// admins claimed the project, through claimed (offline); a forged role is refused with
// the exit code of 'cairn get'.
func TestExplainRecentlyClaimedThenClaimed(t *testing.T) {
	w := newCLIWorld(t)
	root, err := metadata.Root().FromBytes(w.r.RootJSON)
	if err != nil {
		t.Fatal(err)
	}
	rootKey := root.Signed.Roles[tufrepo.RoleRoot].KeyIDs[0]

	e := explainJSON(t, w.downloader(t), "demo@1.0.0")
	if e.Claimed || e.Delegator != tufrepo.RoleRecentlyClaimed || e.Release != "1.0.0" || e.Yanked {
		t.Fatalf("before claiming: %+v", e)
	}
	if len(e.Files) != 1 || e.Files[0].SHA256 != sha(w.file) || e.Files[0].Length != int64(len(w.file)) {
		t.Fatalf("files: %+v", e.Files)
	}
	var roles []string
	for _, l := range e.Chain {
		roles = append(roles, l.Role)
		if !l.ThresholdMet || l.Expires.IsZero() {
			t.Fatalf("link %+v", l)
		}
	}
	if strings.Join(roles, " ") != "root timestamp snapshot targets recently-claimed demo" {
		t.Fatalf("chain: %v", roles)
	}
	if l := e.Chain[0]; l.Version != root.Signed.Version || !l.Expires.Equal(root.Signed.Expires) || l.Keys[0].KeyID != rootKey || !l.Keys[0].Signed {
		t.Fatalf("root link: %+v", l)
	}
	if l := projectLink(t, e); len(l.Keys) != 1 || l.Keys[0].KeyID != w.keyIDs["alice"] || l.Version != 2 {
		t.Fatalf("project link: %+v", l)
	}
	text := w.downloader(t).ok(t, "explain", "demo")
	for _, want := range []string{"demo 1.0.0, verified through snapshot", "recently-claimed  version", "online key held by the server", "demo is NOT claimed", sha(w.file)} {
		if !strings.Contains(text, want) {
			t.Fatalf("explain does not say %q:\n%s", want, text)
		}
	}

	w.admin(t).ok(t, "admin", "claim", "--key", "claimed", "--all", "--yes")
	dl := w.downloader(t)
	e = explainJSON(t, dl, "demo@1.0.0")
	claimedKey := w.r.OfflineSigner(t, tufrepo.RoleClaimed).KeyID
	if !e.Claimed || e.Delegator != tufrepo.RoleClaimed || e.Chain[4].Role != tufrepo.RoleClaimed || e.Chain[4].Keys[0].KeyID != claimedKey || !e.Chain[4].Keys[0].Signed || e.Chain[4].KeyHolder != "offline admin keys" {
		t.Fatalf("after claiming: %+v", e)
	}
	text = dl.ok(t, "explain", "demo@1.0.0")
	if !strings.Contains(text, "demo is claimed (delegated by claimed)") || !strings.Contains(text, "cannot change who may sign its releases") {
		t.Fatalf("explain of the claimed project:\n%s", text)
	}

	// Exit codes as for 'cairn get'.
	refused(t, dl, 20, []string{"no release \"9.9.9\""}, "explain", "demo@9.9.9")
	refused(t, dl, 20, []string{"not in the verified metadata"}, "explain", "nosuch")
	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	forgeRole(t, w.r, "demo", testrepo.Role(3, time.Now().Add(24*time.Hour), testrepo.File{Path: "demo/1.0.0/demo-1.0.0.tar.gz", Content: w.file}), mallory)
	refused(t, dl, 3, []string{"demo"}, "explain", "demo@1.0.0")
	refused(t, dl, 3, []string{"demo"}, "get", "demo@1.0.0", "-o", t.TempDir())
}
