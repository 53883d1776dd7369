package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// coSignBody signs the canonical "signed" value of a proposal's metadata with k.
func coSignBody(t *testing.T, k *testrepo.Key, proposal []byte) []byte {
	t.Helper()
	md, err := metadata.Targets().FromBytes(proposal)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := tufrepo.Canonical(md.Signed)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.Signer.Sign(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	return testrepo.JSON(t, api.CoSignRequest{KeyID: sig.KeyID, Sig: hex.EncodeToString(sig.Signature)})
}

func pending(t *testing.T, r *testrepo.Repo, project string) api.ProposalList {
	t.Helper()
	var pl api.ProposalList
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/projects/"+project+"/pending", "", "", nil).Body, &pl); err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestCoSigning(t *testing.T) {
	r := freshRepo(t)
	ctx := context.Background()
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	bob := testrepo.NewKey(t, tufrepo.KeyECDSAP256)
	carol := testrepo.NewKey(t, tufrepo.KeyEd25519)
	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	admin := r.AdminToken
	otherToken, _, err := r.DB.CreateToken(ctx, store.NewTokenSpec{Name: "other", Projects: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}

	// Creation with threshold 2 and one signature is a proposal for version 1.
	req := api.CreateProjectRequest{Name: "duo", Threshold: 2, Keys: []api.Key{alice.API(), bob.API(), carol.API()}, Metadata: testrepo.Sign(t, testrepo.Role(1, time.Now().Add(30*24*time.Hour)), alice)}
	resp := r.Do(t, "POST", "/api/v1/projects", admin, api.MediaJSON, testrepo.JSON(t, req))
	var res api.SubmitResult
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusAccepted || res.Status != api.StatusPending || res.Signatures != 1 || res.Threshold != 2 {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	if got := r.Do(t, "GET", "/metadata/2.recently-claimed.json", "", "", nil); got.Status != http.StatusNotFound {
		t.Fatalf("a project whose version 1 is pending was delegated: %d", got.Status)
	}
	pl := pending(t, r, "duo")
	if len(pl.Proposals) != 1 || pl.Proposals[0].Version != 1 || pl.Proposals[0].ProposedBy != alice.ID() {
		t.Fatalf("pending: %+v", pl)
	}
	resp = r.Do(t, "POST", "/api/v1/projects/duo/pending/1/signatures", admin, api.MediaJSON, coSignBody(t, bob, pl.Proposals[0].Metadata))
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusCreated || res.Status != api.StatusPublished {
		t.Fatalf("co-signing version 1: %d %s", resp.Status, resp.Body)
	}

	// Version 2 with one file, proposed by alice.
	f := testrepo.File{Path: "duo/1.0/duo.tgz", Content: []byte("duo release")}
	r.PutBlob(t, admin, f.Content)
	v2 := testrepo.Sign(t, testrepo.Role(2, time.Now().Add(30*24*time.Hour), f), alice)
	if resp := r.Submit(t, admin, "duo", v2); resp.Status != http.StatusAccepted {
		t.Fatalf("proposing v2: %d %s", resp.Status, resp.Body)
	}
	prop := pending(t, r, "duo").Proposals[0].Metadata
	other := testrepo.Sign(t, testrepo.Role(2, time.Now().Add(29*24*time.Hour), f), bob)
	path := "/api/v1/projects/duo/pending/2/signatures"
	js := api.MediaJSON
	runBadCases(t, r, []badCase{
		{name: "no token", method: "POST", path: path, contentType: js, body: coSignBody(t, bob, prop), status: 401, code: api.CodeUnauthorized},
		{name: "token of another project", method: "POST", path: path, token: otherToken, contentType: js, body: coSignBody(t, bob, prop), status: 403, code: api.CodeForbidden},
		{name: "bad version", method: "POST", path: "/api/v1/projects/duo/pending/x/signatures", token: admin, contentType: js, body: coSignBody(t, bob, prop), status: 400, code: api.CodeBadRequest},
		{name: "malformed", method: "POST", path: path, token: admin, contentType: js, body: []byte(`{"keyid":`), status: 400, code: api.CodeMalformedJSON},
		{name: "keyid not hex", method: "POST", path: path, token: admin, contentType: js, body: []byte(`{"keyid":"../../x","sig":"00"}`), status: 400, code: api.CodeMalformedJSON},
		{name: "oversized", method: "POST", path: path, token: admin, contentType: js, body: make([]byte, 5000), status: 413, code: api.CodeTooLarge},
		{name: "no such proposal", method: "POST", path: "/api/v1/projects/duo/pending/9/signatures", token: admin, contentType: js, body: coSignBody(t, bob, prop), status: 404, code: api.CodeNotFound},
		{name: "unknown project", method: "POST", path: "/api/v1/projects/nope/pending/2/signatures", token: admin, contentType: js, body: coSignBody(t, bob, prop), status: 404, code: api.CodeNotFound},
		{name: "repeated signature", method: "POST", path: path, token: admin, contentType: js, body: coSignBody(t, alice, prop), status: 409, code: api.CodeSignatureRepeated, detail: alice.ID()},
		{name: "key outside the delegation", method: "POST", path: path, token: admin, contentType: js, body: coSignBody(t, mallory, prop), status: 403, code: api.CodeKeyNotDelegated},
		{name: "signature over different bytes", method: "POST", path: path, token: admin, contentType: js, body: coSignBody(t, bob, other), status: 422, code: api.CodeSignatureInvalid, detail: bob.ID()},
		{name: "second proposal for the same version", method: "POST", path: "/api/v1/projects/duo/roles", token: admin, contentType: js, body: other, status: 409, code: api.CodeProposalExists},
	})

	// An expired proposal cannot be completed.
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE proposals SET expires_at = now() - interval '1 second' WHERE project = 'duo'`); err != nil {
		t.Fatal(err)
	}
	runBadCases(t, r, []badCase{
		{name: "expired", method: "POST", path: path, token: admin, contentType: js, body: coSignBody(t, bob, prop), status: 410, code: api.CodeProposalExpired},
	})
	if n := len(pending(t, r, "duo").Proposals); n != 0 {
		t.Fatalf("an expired proposal is still listed (%d)", n)
	}
	// After expiry the version can be proposed again; carol co-signs it.
	if resp := r.Submit(t, admin, "duo", v2); resp.Status != http.StatusAccepted {
		t.Fatalf("re-proposing v2: %d %s", resp.Status, resp.Body)
	}
	prop = pending(t, r, "duo").Proposals[0].Metadata
	resp = r.Do(t, "POST", path, admin, js, coSignBody(t, carol, prop))
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusCreated || res.Status != api.StatusPublished || res.RoleVersion != 2 {
		t.Fatalf("co-signing v2: %d %s", resp.Status, resp.Body)
	}
	// The published role carries both signatures over the bytes alice proposed.
	pub := r.Do(t, "GET", "/metadata/2.duo.json", "", "", nil)
	md, err := metadata.Targets().FromBytes(pub.Body)
	if err != nil || len(md.Signatures) != 2 {
		t.Fatalf("published role: %v, %d signatures", err, len(md.Signatures))
	}
	// A complete version 3 makes a leftover proposal for version 3 impossible to reuse:
	// proposals are removed when their version (or a later one) is staged.
	v3a := testrepo.Sign(t, testrepo.Role(3, time.Now().Add(30*24*time.Hour), f), bob)
	if resp := r.Submit(t, admin, "duo", v3a); resp.Status != http.StatusAccepted {
		t.Fatalf("proposing v3: %d %s", resp.Status, resp.Body)
	}
	stale := pending(t, r, "duo").Proposals[0].Metadata
	if _, err := r.DB.Pool.Exec(ctx, `DELETE FROM proposals WHERE project = 'duo'`); err != nil {
		t.Fatal(err)
	}
	v3b := testrepo.Sign(t, testrepo.Role(3, time.Now().Add(28*24*time.Hour), f), alice, carol)
	if resp := r.Submit(t, admin, "duo", v3b); resp.Status != http.StatusCreated {
		t.Fatalf("publishing v3: %d %s", resp.Status, resp.Body)
	}
	// Co-signing the superseded proposal says why it cannot complete.
	runBadCases(t, r, []badCase{
		{name: "superseded", method: "POST", path: "/api/v1/projects/duo/pending/3/signatures", token: admin, contentType: js, body: coSignBody(t, alice, stale), status: 409, code: api.CodeProposalStale},
	})
	// Put the old proposal back as if it had been left over, then try to complete it.
	if _, err := r.DB.Pool.Exec(ctx, `INSERT INTO proposals (project, version, signed, signatures, proposed_by, expires_at)
		VALUES ('duo', 3, $1, '[]', $2, now() + interval '1 day')`, signedPart(t, stale), bob.ID()); err != nil {
		t.Fatal(err)
	}
	runBadCases(t, r, []badCase{
		{name: "stale", method: "POST", path: "/api/v1/projects/duo/pending/3/signatures", token: admin, contentType: js, body: coSignBody(t, alice, stale), status: 409, code: api.CodeProposalStale, detail: "already published"},
	})
}

func signedPart(t *testing.T, raw []byte) []byte {
	t.Helper()
	var env struct {
		Signed json.RawMessage `json:"signed"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	return env.Signed
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// TestCoSigningARoleLeavesTheMaintainerProposalOfTheSameVersion: a role proposal and a
// maintainer change proposal may share a version number; a signature added to one must
// not be written into the other.
func TestCoSigningARoleLeavesTheMaintainerProposalOfTheSameVersion(t *testing.T) {
	r := freshRepo(t)
	admin, js := r.AdminToken, api.MediaJSON
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	bob := testrepo.NewKey(t, tufrepo.KeyECDSAP256)
	carol := testrepo.NewKey(t, tufrepo.KeyEd25519)
	three := []*testrepo.Key{alice, bob, carol}
	r.CreateProject(t, admin, "mix", 1, []*testrepo.Key{alice}, three...)
	roleExp, changeExp := time.Now().Add(30*24*time.Hour), time.Now().Add(24*time.Hour)
	if resp := r.Submit(t, admin, "mix", testrepo.Sign(t, testrepo.Role(2, roleExp), three...)); resp.Status != http.StatusCreated {
		t.Fatalf("role v2: %d %s", resp.Status, resp.Body)
	}
	if resp := r.Do(t, "POST", "/api/v1/projects/mix/maintainers", admin, js, changeDoc(t, "mix", 2, 3, three, changeExp, alice)); resp.Status != http.StatusCreated {
		t.Fatalf("threshold 3: %d %s", resp.Status, resp.Body)
	}
	// Version 3 of both, each proposed by alice: 1 of 3 signatures.
	if resp := r.Submit(t, admin, "mix", testrepo.Sign(t, testrepo.Role(3, roleExp), alice)); resp.Status != http.StatusAccepted {
		t.Fatalf("proposing role v3: %d %s", resp.Status, resp.Body)
	}
	if resp := r.Do(t, "POST", "/api/v1/projects/mix/maintainers", admin, js, changeDoc(t, "mix", 3, 2, three, changeExp, alice)); resp.Status != http.StatusAccepted {
		t.Fatalf("proposing maintainer change 3: %d %s", resp.Status, resp.Body)
	}
	byKind := func() map[string]api.Proposal {
		out := map[string]api.Proposal{}
		for _, p := range pending(t, r, "mix").Proposals {
			out[p.Kind] = p
		}
		return out
	}
	resp := r.Do(t, "POST", "/api/v1/projects/mix/pending/3/signatures", admin, js, coSignBody(t, bob, byKind()[api.KindRole].Metadata))
	if resp.Status != http.StatusAccepted {
		t.Fatalf("co-signing role v3: %d %s", resp.Status, resp.Body)
	}
	got := byKind()
	if by := got[api.KindRole].SignedBy; len(by) != 2 {
		t.Fatalf("role proposal signed by %v, want alice and bob", by)
	}
	if by := got[api.KindMaintainers].SignedBy; len(by) != 1 || by[0] != alice.ID() {
		t.Fatalf("maintainer change proposal signed by %v, want alice only", by)
	}
}
