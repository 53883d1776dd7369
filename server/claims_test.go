package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// nextClaimed builds claimed version v delegating to projects (name → keys, threshold),
// with edit applied, signed by signer.
func nextClaimed(t *testing.T, v int64, projects map[string][]*testrepo.Key, threshold int, signer *tufrepo.OnlineSigner, edit func(*metadata.Metadata[metadata.TargetsType])) []byte {
	t.Helper()
	md := metadata.Targets(time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second))
	md.Signed.Version = v
	md.Signed.SpecVersion = tufrepo.SpecVersion
	md.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
	for name, keys := range projects {
		d := metadata.DelegatedRole{Name: name, Threshold: threshold, Terminating: true, Paths: []string{tufrepo.ProjectPathPattern(name)}}
		for _, k := range keys {
			md.Signed.Delegations.Keys[k.ID()] = k.Signer.Key
			d.KeyIDs = append(d.KeyIDs, k.ID())
		}
		md.Signed.Delegations.Roles = append(md.Signed.Delegations.Roles, d)
	}
	if edit != nil {
		edit(md)
	}
	signed, err := tufrepo.Canonical(md.Signed)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tufrepo.SignEnvelope(context.Background(), signed, signer)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestClaimingBadInput(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	bob := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	r.CreateProject(t, r.AdminToken, "extra", 1, []*testrepo.Key{bob}, bob)
	claimedKey := r.OfflineSigner(t, tufrepo.RoleClaimed)
	wrongKey := r.OfflineSigner(t, tufrepo.RoleTargets)
	scoped, _, err := r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "demo-only", Projects: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	demo := map[string][]*testrepo.Key{"demo": {alice}}
	path := "/api/v1/admin/claimed"
	js := api.MediaJSON
	admin := r.AdminToken
	runBadCases(t, r, []badCase{
		{name: "no token", method: "POST", path: path, contentType: js, body: nextClaimed(t, 2, demo, 1, claimedKey, nil), status: 401, code: api.CodeUnauthorized},
		{name: "not an admin", method: "POST", path: path, token: scoped, contentType: js, body: nextClaimed(t, 2, demo, 1, claimedKey, nil), status: 403, code: api.CodeForbidden},
		{name: "queue not an admin", method: "GET", path: "/api/v1/admin/claims", token: scoped, status: 403, code: api.CodeForbidden},
		{name: "malformed", method: "POST", path: path, token: admin, contentType: js, body: []byte("{"), status: 400, code: api.CodeMalformedMetadata},
		{name: "replayed version", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 1, demo, 1, claimedKey, nil), status: 409, code: api.CodeVersionConflict},
		{name: "skipped version", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 3, demo, 1, claimedKey, nil), status: 409, code: api.CodeVersionConflict},
		{name: "signed by the wrong key", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, demo, 1, wrongKey, nil), status: 422, code: api.CodeSignatureInvalid},
		{name: "signed by a maintainer", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, demo, 1, alice.Signer, nil), status: 422, code: api.CodeSignatureInvalid},
		{name: "expired", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, demo, 1, claimedKey, func(md *metadata.Metadata[metadata.TargetsType]) {
			md.Signed.Expires = time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		}), status: 422, code: api.CodeExpired},
		{name: "unknown project", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, map[string][]*testrepo.Key{"ghost": {alice}}, 1, claimedKey, nil), status: 404, code: api.CodeNotFound, detail: "ghost"},
		{name: "wrong maintainer key", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, map[string][]*testrepo.Key{"demo": {bob}}, 1, claimedKey, nil), status: 400, code: api.CodeInvalidKey, detail: "demo"},
		{name: "wrong threshold", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, map[string][]*testrepo.Key{"demo": {alice}}, 2, claimedKey, nil), status: 400, code: api.CodeInvalidThreshold},
		{name: "not terminating", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, demo, 1, claimedKey, func(md *metadata.Metadata[metadata.TargetsType]) {
			md.Signed.Delegations.Roles[0].Terminating = false
		}), status: 400, code: api.CodeBadRequest},
		{name: "wider paths", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, demo, 1, claimedKey, func(md *metadata.Metadata[metadata.TargetsType]) {
			md.Signed.Delegations.Roles[0].Paths = []string{"*/*/*"}
		}), status: 400, code: api.CodeBadRequest},
		{name: "lists targets", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 2, demo, 1, claimedKey, func(md *metadata.Metadata[metadata.TargetsType]) {
			tf := metadata.TargetFile()
			tf.Length, tf.Hashes = 1, metadata.Hashes{"sha256": make([]byte, 32)}
			md.Signed.Targets["demo/1/x"] = tf
		}), status: 400, code: api.CodeBadRequest},
	})
	// Claim demo, then a version that drops it is refused.
	resp := r.Do(t, "POST", path, admin, js, nextClaimed(t, 2, demo, 1, claimedKey, nil))
	var res api.ClaimResult
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusCreated || len(res.Moved) != 1 {
		t.Fatalf("claiming demo: %d %s", resp.Status, resp.Body)
	}
	runBadCases(t, r, []badCase{
		{name: "drops a claimed project", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 3, map[string][]*testrepo.Key{"extra": {bob}}, 1, claimedKey, nil), status: 400, code: api.CodeBadRequest, detail: "demo"},
	})
	var q api.ClaimQueue
	// The queue lists what waits (extra) and the claimed tree's nodes.
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/admin/claims", admin, "", nil).Body, &q); err != nil || q.ClaimedVersion != 2 || len(q.Projects) != 1 || q.Projects[0].Name != "extra" ||
		len(q.Nodes) != 1 || q.Nodes[0].Role != tufrepo.RoleClaimed || q.Nodes[0].Version != 2 {
		t.Fatalf("queue: %+v %v", q, err)
	}
	var p api.Project
	json.Unmarshal(r.Do(t, "GET", "/api/v1/projects/demo", "", "", nil).Body, &p)
	if p.Delegator != tufrepo.RoleClaimed {
		t.Fatalf("demo delegator %q", p.Delegator)
	}
	// A maintainer change of a claimed project is queued, not applied.
	resp = r.Do(t, "POST", "/api/v1/projects/demo/maintainers", admin, js, changeDoc(t, "demo", 2, 1, []*testrepo.Key{alice, bob}, time.Now().Add(time.Hour), alice))
	var mc api.MaintainerChangeResult
	if err := json.Unmarshal(resp.Body, &mc); err != nil || resp.Status != http.StatusAccepted || mc.Status != "queued" {
		t.Fatalf("change of a claimed project: %d %s", resp.Status, resp.Body)
	}
	// The next claimed must carry it.
	runBadCases(t, r, []badCase{
		{name: "ignores a queued change", method: "POST", path: path, token: admin, contentType: js, body: nextClaimed(t, 3, demo, 1, claimedKey, nil), status: 400, code: api.CodeInvalidKey},
	})
	resp = r.Do(t, "POST", path, admin, js, nextClaimed(t, 3, map[string][]*testrepo.Key{"demo": {alice, bob}}, 1, claimedKey, nil))
	if resp.Status != http.StatusCreated {
		t.Fatalf("claimed with the queued change: %d %s", resp.Status, resp.Body)
	}
	json.Unmarshal(r.Do(t, "GET", "/api/v1/projects/demo", "", "", nil).Body, &p)
	if len(p.Maintainers) != 2 || p.DelegationVersion != 2 {
		t.Fatalf("demo after the queued change: %+v", p)
	}
	// Queued changes chain: the second builds on the first (its version and its keys).
	carol := testrepo.NewKey(t, tufrepo.KeyEd25519)
	exp := time.Now().Add(time.Hour)
	for _, c := range []struct {
		v    int64
		keys []*testrepo.Key
	}{{3, []*testrepo.Key{alice, bob, carol}}, {4, []*testrepo.Key{alice, carol}}} {
		resp := r.Do(t, "POST", "/api/v1/projects/demo/maintainers", admin, js, changeDoc(t, "demo", c.v, 1, c.keys, exp, alice))
		if resp.Status != http.StatusAccepted || !strings.Contains(string(resp.Body), "queued") {
			t.Fatalf("queued change %d: %d %s", c.v, resp.Status, resp.Body)
		}
	}
	runBadCases(t, r, []badCase{
		{name: "change not built on the queued one", method: "POST", path: "/api/v1/projects/demo/maintainers", token: admin, contentType: js, body: changeDoc(t, "demo", 3, 1, []*testrepo.Key{alice}, exp, alice), status: 409, code: api.CodeVersionConflict},
		{name: "change signed by a key the queued change removed", method: "POST", path: "/api/v1/projects/demo/maintainers", token: admin, contentType: js, body: changeDoc(t, "demo", 5, 1, []*testrepo.Key{alice, bob}, exp, bob), status: 403, code: api.CodeKeyNotDelegated},
	})
	q = api.ClaimQueue{}
	json.Unmarshal(r.Do(t, "GET", "/api/v1/admin/claims", admin, "", nil).Body, &q)
	for _, cp := range q.Projects {
		if cp.Name == "demo" && (!cp.Change || len(cp.Changes) != 2 || len(cp.Keys) != 2 || cp.DelegationVersion != 4) {
			t.Fatalf("queue entry for demo: %+v", cp)
		}
	}
	resp = r.Do(t, "POST", path, admin, js, nextClaimed(t, 4, map[string][]*testrepo.Key{"demo": {alice, carol}}, 1, claimedKey, nil))
	if resp.Status != http.StatusCreated {
		t.Fatalf("claimed with both queued changes: %d %s", resp.Status, resp.Body)
	}
	json.Unmarshal(r.Do(t, "GET", "/api/v1/projects/demo", "", "", nil).Body, &p)
	if len(p.Maintainers) != 2 || p.DelegationVersion != 4 {
		t.Fatalf("demo after both changes: %+v", p)
	}
}

func TestExpiryWarnings(t *testing.T) {
	r := freshRepo(t)
	var st api.RepositoryStatus
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/status", "", "", nil).Body, &st); err != nil || len(st.Roles) != 6 {
		t.Fatalf("status: %+v %v", st, err)
	}
	for _, e := range st.Roles {
		if e.Warning != "" || e.Version < 1 {
			t.Fatalf("fresh repository: %+v", e)
		}
	}
	// Admins re-sign claimed with only 10 days to go: the server warns.
	raw := nextClaimed(t, 2, nil, 1, r.OfflineSigner(t, tufrepo.RoleClaimed), func(md *metadata.Metadata[metadata.TargetsType]) {
		md.Signed.Expires = time.Now().Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	})
	if resp := r.Do(t, "POST", "/api/v1/admin/claimed", r.AdminToken, api.MediaJSON, raw); resp.Status != http.StatusCreated {
		t.Fatalf("claimed: %d %s", resp.Status, resp.Body)
	}
	st = api.RepositoryStatus{}
	json.Unmarshal(r.Do(t, "GET", "/api/v1/status", "", "", nil).Body, &st)
	var claimed api.RoleExpiry
	for _, e := range st.Roles {
		if e.Role == tufrepo.RoleClaimed {
			claimed = e
		}
	}
	if claimed.Version != 2 || claimed.SignedBy != "offline" || !strings.Contains(claimed.Warning, "admins must re-sign") {
		t.Fatalf("claimed: %+v", claimed)
	}
	var h api.Health
	json.Unmarshal(r.Do(t, "GET", "/readyz", "", "", nil).Body, &h)
	if !strings.HasPrefix(h.Checks[tufrepo.RoleClaimed], "WARNING") || h.Status != "ok" {
		t.Fatalf("readyz: %+v", h)
	}
}
