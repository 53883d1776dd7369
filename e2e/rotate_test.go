package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestRootRotationClientsFollow: admins rotate the root keys (1 → 2-of-2 new keys) and the
// targets key in one step; root version 2 is signed by the old and the new root keys,
// targets version 2 by the new targets key. Clients that trusted root 1 follow.
func TestRootRotationClientsFollow(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	cs := clients(t, w.r)
	for _, c := range cs {
		if _, err := c.get(t, w.f1.Path); err != nil {
			t.Fatalf("%s before rotation: %v", c.name, err)
		}
	}
	oldRoot := w.r.OfflineSigner(t, tufrepo.RoleRoot)
	newRoot1, newRoot2, newTargets := testrepo.NewKey(t, tufrepo.KeyEd25519), testrepo.NewKey(t, tufrepo.KeyECDSAP256), testrepo.NewKey(t, tufrepo.KeyEd25519)

	root, err := metadata.Root().FromBytes(w.r.RootJSON)
	if err != nil {
		t.Fatal(err)
	}
	root.Signed.Version = 2
	root.Signed.Expires = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
	for _, id := range root.Signed.Roles[tufrepo.RoleRoot].KeyIDs {
		root.Signed.RevokeKey(id, tufrepo.RoleRoot)
	}
	for _, id := range root.Signed.Roles[tufrepo.RoleTargets].KeyIDs {
		root.Signed.RevokeKey(id, tufrepo.RoleTargets)
	}
	root.Signed.AddKey(newRoot1.Signer.Key, tufrepo.RoleRoot)
	root.Signed.AddKey(newRoot2.Signer.Key, tufrepo.RoleRoot)
	root.Signed.AddKey(newTargets.Signer.Key, tufrepo.RoleTargets)
	root.Signed.Roles[tufrepo.RoleRoot].Threshold = 2
	signedRoot, _ := tufrepo.Canonical(root.Signed)
	rootRaw, err := tufrepo.SignEnvelope(ctx, signedRoot, oldRoot, newRoot1.Signer, newRoot2.Signer)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := metadata.Targets().FromBytes(w.r.Do(t, "GET", "/metadata/1.targets.json", "", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	targets.Signed.Version = 2
	targets.Signed.Expires = root.Signed.Expires
	signedTargets, _ := tufrepo.Canonical(targets.Signed)
	targetsRaw, _ := tufrepo.SignEnvelope(ctx, signedTargets, newTargets.Signer)
	badTargets, _ := tufrepo.SignEnvelope(ctx, signedTargets, w.r.OfflineSigner(t, tufrepo.RoleTargets))

	post := func(up api.TopLevelUpdate) testrepo.Response {
		return w.r.Do(t, "POST", "/api/v1/admin/root", w.r.AdminToken, api.MediaJSON, testrepo.JSON(t, up))
	}
	onlyNew, _ := tufrepo.SignEnvelope(ctx, signedRoot, newRoot1.Signer, newRoot2.Signer)
	// A root that hands targets to the server's own online key.
	onlineRoot, _ := metadata.Root().FromBytes(rootRaw)
	onlineRoot.Signed.AddKey(w.r.Server.Publisher().Signers.Timestamp.Key, tufrepo.RoleTargets)
	onlineSigned, _ := tufrepo.Canonical(onlineRoot.Signed)
	withOnline, _ := tufrepo.SignEnvelope(ctx, onlineSigned, oldRoot, newRoot1.Signer, newRoot2.Signer)
	for _, c := range []struct {
		name string
		up   api.TopLevelUpdate
		code api.Code
	}{
		{"root without the targets it needs", api.TopLevelUpdate{Root: rootRaw}, api.CodeBadRequest},
		{"root not signed by the old keys", api.TopLevelUpdate{Root: onlyNew, Targets: targetsRaw}, api.CodeSignatureInvalid},
		{"targets signed by the old targets key", api.TopLevelUpdate{Root: rootRaw, Targets: badTargets}, api.CodeSignatureInvalid},
		{"nothing", api.TopLevelUpdate{}, api.CodeBadRequest},
		{"targets given to an online key", api.TopLevelUpdate{Root: withOnline, Targets: targetsRaw}, api.CodeInvalidKey},
	} {
		if resp := post(c.up); resp.Problem().Code != c.code {
			t.Fatalf("%s: %d %s", c.name, resp.Status, resp.Body)
		}
	}
	if got := w.r.Do(t, "GET", "/metadata/2.root.json", "", "", nil); got.Status != http.StatusNotFound {
		t.Fatalf("a refused root is served: %d", got.Status)
	}
	resp := post(api.TopLevelUpdate{Root: rootRaw, Targets: targetsRaw})
	var res api.TopLevelResult
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusCreated || res.RootVersion != 2 || res.TargetsVersion != 2 {
		t.Fatalf("rotation: %d %s", resp.Status, resp.Body)
	}
	if got := w.r.Do(t, "GET", "/metadata/2.root.json", "", "", nil); !bytes.Equal(got.Body, rootRaw) {
		t.Fatalf("root 2 not served byte for byte: %d", got.Status)
	}
	// Every client, holding root 1, follows to root 2 and still verifies releases.
	for _, c := range cs {
		if got, err := c.get(t, w.f2.Path); err != nil || !bytes.Equal(got, w.f2.Content) {
			t.Fatalf("%s after rotation: %v", c.name, err)
		}
	}
	// A new client bootstrapped from root 1 walks the chain too.
	for _, c := range clients(t, w.r) {
		if _, err := c.get(t, w.f1.Path); err != nil {
			t.Fatalf("new %s after rotation: %v", c.name, err)
		}
	}
}
