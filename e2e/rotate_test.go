package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/internal/tufjs"
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

// TestOnlineKeyRotation: the server runs with standby keys; admins publish a root that
// names them for timestamp and snapshot; the publisher switches to them in the publish
// that makes that root visible, and every client keeps updating.
func TestOnlineKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var uris []string
	var standby []*testrepo.Key
	for _, name := range []string{"timestamp2", "snapshot2"} {
		uri, o := testrepo.OnlineKeyFile(t, dir, name, tufrepo.KeyEd25519)
		uris, standby = append(uris, uri), append(standby, &testrepo.Key{Signer: o})
	}
	u, drop, err := testdb.Create("e2e_online_rotation")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.StandbyKeys = uris })
	t.Cleanup(drop)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	f1 := testrepo.File{Path: "demo/1.0/demo.tgz", Content: []byte("one")}
	r.PutBlob(t, r.AdminToken, f1.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(24*time.Hour), f1), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.Status, resp.Body)
	}
	cs := clients(t, r)
	for _, c := range cs {
		if _, err := c.get(t, f1.Path); err != nil {
			t.Fatalf("%s before rotation: %v", c.name, err)
		}
	}

	root, _ := metadata.Root().FromBytes(r.RootJSON)
	root.Signed.Version = 2
	root.Signed.Expires = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
	online := r.Server.Publisher().Signers
	root.Signed.RevokeKey(online.Timestamp.KeyID, tufrepo.RoleTimestamp)
	root.Signed.RevokeKey(online.Snapshot.KeyID, tufrepo.RoleSnapshot)
	root.Signed.AddKey(standby[0].Signer.Key, tufrepo.RoleTimestamp)
	root.Signed.AddKey(standby[1].Signer.Key, tufrepo.RoleSnapshot)
	signed, _ := tufrepo.Canonical(root.Signed)
	raw, err := tufrepo.SignEnvelope(ctx, signed, r.OfflineSigner(t, tufrepo.RoleRoot))
	if err != nil {
		t.Fatal(err)
	}
	// A root naming a key the server does not hold is refused.
	bad, _ := metadata.Root().FromBytes(raw)
	bad.Signed.RevokeKey(standby[0].Signer.KeyID, tufrepo.RoleTimestamp)
	bad.Signed.AddKey(alice.Signer.Key, tufrepo.RoleTimestamp)
	badSigned, _ := tufrepo.Canonical(bad.Signed)
	badRaw, _ := tufrepo.SignEnvelope(ctx, badSigned, r.OfflineSigner(t, tufrepo.RoleRoot))
	if resp := r.Do(t, "POST", "/api/v1/admin/root", r.AdminToken, api.MediaJSON, testrepo.JSON(t, api.TopLevelUpdate{Root: badRaw})); resp.Problem().Code != api.CodeInvalidKey {
		t.Fatalf("root with an unheld timestamp key: %d %s", resp.Status, resp.Body)
	}
	if resp := r.Do(t, "POST", "/api/v1/admin/root", r.AdminToken, api.MediaJSON, testrepo.JSON(t, api.TopLevelUpdate{Root: raw})); resp.Status != http.StatusCreated {
		t.Fatalf("rotation: %d %s", resp.Status, resp.Body)
	}
	ts, err := metadata.Timestamp().FromBytes(r.Do(t, "GET", "/metadata/timestamp.json", "", "", nil).Body)
	if err != nil || len(ts.Signatures) != 1 || ts.Signatures[0].KeyID != standby[0].Signer.KeyID {
		t.Fatalf("the timestamp served with root 2 is not signed by the new key: %v %+v", err, ts.Signatures)
	}
	// Clients that knew root 1 follow; uploads keep publishing under the new keys.
	f2 := testrepo.File{Path: "demo/2.0/demo.tgz", Content: []byte("two")}
	r.PutBlob(t, r.AdminToken, f2.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(3, time.Now().Add(24*time.Hour), f1, f2), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload after rotation: %d %s", resp.Status, resp.Body)
	}
	for _, c := range cs {
		if got, err := c.get(t, f2.Path); err != nil || string(got) != "two" {
			t.Fatalf("%s after rotation: %v", c.name, err)
		}
	}

	// The compromise drill's last step: the replaced key leaked. Whoever holds it signs a
	// timestamp with a higher version (freezing clients on today's snapshot) and gets the
	// server to serve it. Clients that updated to root 2 refuse it: root no longer
	// delegates timestamp to that key.
	leaked := online.Timestamp
	cur, err := metadata.Timestamp().FromBytes(r.Do(t, "GET", "/metadata/timestamp.json", "", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	forgedV := cur.Signed.Version + 100
	cur.Signed.Version = forgedV
	cur.Signed.Expires = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
	forgedSigned, _ := tufrepo.Canonical(cur.Signed)
	forged, err := tufrepo.SignEnvelope(ctx, forgedSigned, leaked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(ctx, `INSERT INTO metadata (role, version, raw, length, sha256, expires, action, snapshot_version)
		SELECT 'timestamp', $1, $2, $3, $4, $5, action, snapshot_version FROM metadata WHERE role = 'timestamp' AND version = $6`,
		forgedV, forged, len(forged), shaBytes(forged), cur.Signed.Expires, forgedV-100); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE repo_state SET timestamp_version = $1`, forgedV); err != nil {
		t.Fatal(err)
	}
	waitForTimestamp(t, r, forgedV)
	for _, c := range cs {
		checkRefused(t, c, f1.Path, refusal{isUnsigned, tufjs.ExitSignature, 3})
	}
}
