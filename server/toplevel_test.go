package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestTopLevelBadInput: every refused root or targets upload leaves the database and the
// served metadata exactly as they were.
func TestTopLevelBadInput(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	oldRoot := r.OfflineSigner(t, tufrepo.RoleRoot)
	oldTargets := r.OfflineSigner(t, tufrepo.RoleTargets)
	newRoot := testrepo.NewKey(t, tufrepo.KeyEd25519)
	online := r.Server.Publisher().Signers

	// nextRoot builds root version v from the current one, edited, signed by signers.
	nextRoot := func(v int64, edit func(*metadata.Metadata[metadata.RootType]), signers ...*tufrepo.OnlineSigner) []byte {
		md, err := metadata.Root().FromBytes(r.RootJSON)
		if err != nil {
			t.Fatal(err)
		}
		md.Signed.Version = v
		md.Signed.Expires = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
		if edit != nil {
			edit(md)
		}
		signed, _ := tufrepo.Canonical(md.Signed)
		raw, err := tufrepo.SignEnvelope(ctx, signed, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	nextTargets := func(v int64, edit func(*metadata.Metadata[metadata.TargetsType]), signers ...*tufrepo.OnlineSigner) []byte {
		md, err := metadata.Targets().FromBytes(r.Do(t, "GET", "/metadata/1.targets.json", "", "", nil).Body)
		if err != nil {
			t.Fatal(err)
		}
		md.Signed.Version = v
		md.Signed.Expires = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
		if edit != nil {
			edit(md)
		}
		signed, _ := tufrepo.Canonical(md.Signed)
		raw, err := tufrepo.SignEnvelope(ctx, signed, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	addRootKey := func(md *metadata.Metadata[metadata.RootType]) { md.Signed.AddKey(newRoot.Signer.Key, tufrepo.RoleRoot) }
	body := func(root, targets []byte) []byte {
		return testrepo.JSON(t, api.TopLevelUpdate{Root: root, Targets: targets})
	}
	path := "/api/v1/admin/root"
	js := api.MediaJSON
	admin := r.AdminToken
	good := nextRoot(2, addRootKey, oldRoot, newRoot.Signer)
	runBadCases(t, r, []badCase{
		{name: "no token", method: "POST", path: path, contentType: js, body: body(good, nil), status: 401, code: api.CodeUnauthorized},
		{name: "nothing", method: "POST", path: path, token: admin, contentType: js, body: body(nil, nil), status: 400, code: api.CodeBadRequest},
		{name: "unknown field", method: "POST", path: path, token: admin, contentType: js, body: []byte(`{"root":"","snapshot":""}`), status: 400, code: api.CodeMalformedJSON},
		{name: "root not metadata", method: "POST", path: path, token: admin, contentType: js, body: body([]byte("{}"), nil), status: 400, code: api.CodeMalformedMetadata},
		{name: "replayed root", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(1, addRootKey, oldRoot, newRoot.Signer), nil), status: 409, code: api.CodeVersionConflict},
		{name: "skipped root version", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(3, addRootKey, oldRoot, newRoot.Signer), nil), status: 409, code: api.CodeVersionConflict},
		{name: "not signed by the old root", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(2, func(md *metadata.Metadata[metadata.RootType]) {
			md.Signed.RevokeKey(oldRoot.KeyID, tufrepo.RoleRoot)
			addRootKey(md)
		}, newRoot.Signer), nil), status: 422, code: api.CodeSignatureInvalid},
		{name: "not signed by the new root key", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(2, func(md *metadata.Metadata[metadata.RootType]) {
			addRootKey(md)
			md.Signed.Roles[tufrepo.RoleRoot].Threshold = 2
		}, oldRoot), nil), status: 422, code: api.CodeSignatureInvalid},
		{name: "consistent snapshots off", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(2, func(md *metadata.Metadata[metadata.RootType]) { md.Signed.ConsistentSnapshot = false }, oldRoot), nil), status: 400, code: api.CodeBadRequest},
		{name: "root expires too soon", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(2, func(md *metadata.Metadata[metadata.RootType]) {
			md.Signed.Expires = time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
		}, oldRoot), nil), status: 422, code: api.CodeExpired},
		{name: "timestamp key replaced", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(2, func(md *metadata.Metadata[metadata.RootType]) {
			md.Signed.RevokeKey(online.Timestamp.KeyID, tufrepo.RoleTimestamp)
			md.Signed.AddKey(newRoot.Signer.Key, tufrepo.RoleTimestamp)
		}, oldRoot), nil), status: 400, code: api.CodeInvalidKey},
		{name: "root given to an online key", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(2, func(md *metadata.Metadata[metadata.RootType]) {
			md.Signed.AddKey(online.Snapshot.Key, tufrepo.RoleRoot)
		}, oldRoot), nil), status: 400, code: api.CodeInvalidKey},
		{name: "targets keys change without targets", method: "POST", path: path, token: admin, contentType: js, body: body(nextRoot(2, func(md *metadata.Metadata[metadata.RootType]) {
			md.Signed.AddKey(newRoot.Signer.Key, tufrepo.RoleTargets)
		}, oldRoot), nil), status: 400, code: api.CodeBadRequest},
		{name: "targets by a key root does not name", method: "POST", path: path, token: admin, contentType: js, body: body(nil, nextTargets(2, nil, newRoot.Signer)), status: 422, code: api.CodeSignatureInvalid},
		{name: "targets with other delegations", method: "POST", path: path, token: admin, contentType: js, body: body(nil, nextTargets(2, func(md *metadata.Metadata[metadata.TargetsType]) {
			md.Signed.Delegations.Roles[1].Paths = []string{"*"}
		}, oldTargets)), status: 400, code: api.CodeBadRequest},
		{name: "replayed targets", method: "POST", path: path, token: admin, contentType: js, body: body(nil, nextTargets(1, nil, oldTargets)), status: 409, code: api.CodeVersionConflict},
	})
	// The good ones are accepted.
	if resp := r.Do(t, "POST", path, admin, js, body(good, nil)); resp.Status != http.StatusCreated {
		t.Fatalf("root 2: %d %s", resp.Status, resp.Body)
	}
	if resp := r.Do(t, "POST", path, admin, js, body(nil, nextTargets(2, nil, oldTargets))); resp.Status != http.StatusCreated {
		t.Fatalf("targets 2: %d %s", resp.Status, resp.Body)
	}
}
