package server_test

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

// changeDoc builds a maintainer change document signed by signers.
func changeDoc(t *testing.T, project string, version int64, threshold int, keys []*testrepo.Key, exp time.Time, signers ...*testrepo.Key) []byte {
	t.Helper()
	doc := api.MaintainerChange{Type: api.MaintainerChangeType, Project: project, Version: version, Keys: map[string]api.Key{}, Threshold: threshold, Expires: exp.UTC().Truncate(time.Second)}
	for _, k := range keys {
		doc.Keys[k.ID()] = k.API()
	}
	signed := testrepo.JSON(t, doc)
	var generic any
	if err := json.Unmarshal(signed, &generic); err != nil {
		t.Fatal(err)
	}
	payload, err := tufrepo.Canonical(generic)
	if err != nil {
		t.Fatal(err)
	}
	var sigs []metadata.Signature
	for _, k := range signers {
		s, err := k.Signer.Sign(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	return tufrepo.Envelope(signed, sigs)
}

func delegationOf(t *testing.T, r *testrepo.Repo, project string) (keyids []string, threshold int) {
	t.Helper()
	var ts struct {
		Signed struct {
			Meta map[string]struct{ Version int64 } `json:"meta"`
		} `json:"signed"`
	}
	json.Unmarshal(r.Do(t, "GET", "/metadata/timestamp.json", "", "", nil).Body, &ts)
	snap := r.Do(t, "GET", "/metadata/"+itoa(ts.Signed.Meta["snapshot.json"].Version)+".snapshot.json", "", "", nil)
	json.Unmarshal(snap.Body, &ts)
	rc, err := metadata.Targets().FromBytes(r.Do(t, "GET", "/metadata/"+itoa(ts.Signed.Meta["recently-claimed.json"].Version)+".recently-claimed.json", "", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rc.Signed.Delegations.Roles {
		if d.Name == project {
			return d.KeyIDs, d.Threshold
		}
	}
	t.Fatalf("%s not delegated", project)
	return nil, 0
}

func TestMaintainerChanges(t *testing.T) {
	r := freshRepo(t)
	admin := r.AdminToken
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	bob := testrepo.NewKey(t, tufrepo.KeyECDSAP256)
	carol := testrepo.NewKey(t, tufrepo.KeyEd25519)
	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, admin, "trio", 1, []*testrepo.Key{alice}, alice)
	exp := time.Now().Add(24 * time.Hour)
	path := "/api/v1/projects/trio/maintainers"
	js := api.MediaJSON

	runBadCases(t, r, []badCase{
		{name: "no token", method: "POST", path: path, contentType: js, body: changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, exp, alice), status: 401, code: api.CodeUnauthorized},
		{name: "not json", method: "POST", path: path, token: admin, contentType: js, body: []byte("nope"), status: 400, code: api.CodeMalformedMetadata},
		{name: "case variant of threshold", method: "POST", path: path, token: admin, contentType: js, body: bytes.Replace(changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, exp, alice), []byte(`"threshold":`), []byte(`"THRESHOLD":`), 1), status: 400, code: api.CodeAmbiguousJSON, detail: `"threshold"`},
		{name: "duplicate project key", method: "POST", path: path, token: admin, contentType: js, body: bytes.Replace(changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, exp, alice), []byte(`"project":"trio"`), []byte(`"project":"trio","project":"trio"`), 1), status: 400, code: api.CodeAmbiguousJSON, detail: "duplicate key"},
		{name: "wrong project", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "other", 2, 1, []*testrepo.Key{alice, bob}, exp, alice), status: 400, code: api.CodeMalformedMetadata},
		{name: "replayed version", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 1, 1, []*testrepo.Key{alice, bob}, exp, alice), status: 409, code: api.CodeVersionConflict},
		{name: "skipped version", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 3, 1, []*testrepo.Key{alice, bob}, exp, alice), status: 409, code: api.CodeVersionConflict},
		{name: "no keys left", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 1, nil, exp, alice), status: 400, code: api.CodeInvalidThreshold, detail: "at least one"},
		{name: "threshold above keys", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 3, []*testrepo.Key{alice, bob}, exp, alice), status: 400, code: api.CodeInvalidThreshold},
		{name: "threshold zero", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 0, []*testrepo.Key{alice, bob}, exp, alice), status: 400, code: api.CodeInvalidThreshold},
		{name: "no change", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice}, exp, alice), status: 400, code: api.CodeBadRequest},
		{name: "expired", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, time.Now().Add(-time.Minute), alice), status: 422, code: api.CodeExpired},
		{name: "expires too late", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, time.Now().Add(90*24*time.Hour), alice), status: 422, code: api.CodeExpiryTooFar},
		{name: "signed by a non-maintainer", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, mallory}, exp, mallory), status: 403, code: api.CodeKeyNotDelegated, detail: mallory.ID()},
		{name: "unsigned", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, exp), status: 422, code: api.CodeThresholdNotMet},
		{name: "signature over other bytes", method: "POST", path: path, token: admin, contentType: js, body: func() []byte {
			good := changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, exp, alice)
			other := changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, carol}, exp, alice)
			var a, b map[string]json.RawMessage
			json.Unmarshal(good, &a)
			json.Unmarshal(other, &b)
			a["signatures"] = b["signatures"]
			return testrepo.JSON(t, a)
		}(), status: 422, code: api.CodeSignatureInvalid},
	})

	// Add bob (threshold 1): applied and published in recently-claimed at once.
	resp := r.Do(t, "POST", path, admin, js, changeDoc(t, "trio", 2, 1, []*testrepo.Key{alice, bob}, exp, alice))
	var res api.MaintainerChangeResult
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusCreated || res.Status != "applied" {
		t.Fatalf("adding bob: %d %s", resp.Status, resp.Body)
	}
	if ids, th := delegationOf(t, r, "trio"); len(ids) != 2 || th != 1 {
		t.Fatalf("published delegation: %v threshold %d", ids, th)
	}
	// Raising the threshold to 2 while the published role carries one signature would
	// leave clients unable to verify it: refused.
	runBadCases(t, r, []badCase{
		{name: "role would not verify", method: "POST", path: path, token: admin, contentType: js, body: changeDoc(t, "trio", 3, 2, []*testrepo.Key{alice, bob}, exp, alice), status: 422, code: api.CodeThresholdNotMet, detail: "first publish a role version"},
	})
	// Both sign version 2 of the role; now the threshold can go to 2.
	if resp := r.Submit(t, admin, "trio", testrepo.Sign(t, testrepo.Role(2, exp.Add(30*24*time.Hour)), alice, bob)); resp.Status != http.StatusCreated {
		t.Fatalf("role v2: %d %s", resp.Status, resp.Body)
	}
	if resp := r.Do(t, "POST", path, admin, js, changeDoc(t, "trio", 3, 2, []*testrepo.Key{alice, bob}, exp, alice)); resp.Status != http.StatusCreated {
		t.Fatalf("threshold 2: %d %s", resp.Status, resp.Body)
	}
	// Adding carol now needs two signatures: alice proposes, bob co-signs.
	resp = r.Do(t, "POST", path, admin, js, changeDoc(t, "trio", 4, 2, []*testrepo.Key{alice, bob, carol}, exp, alice))
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusAccepted || res.Status != "pending" || res.Signatures != 1 || res.Threshold != 2 {
		t.Fatalf("proposing carol: %d %s", resp.Status, resp.Body)
	}
	pl := pending(t, r, "trio")
	if len(pl.Proposals) != 1 || pl.Proposals[0].Kind != api.KindMaintainers {
		t.Fatalf("pending: %+v", pl)
	}
	var doc struct {
		Signed json.RawMessage `json:"signed"`
	}
	json.Unmarshal(pl.Proposals[0].Metadata, &doc)
	var generic any
	json.Unmarshal(doc.Signed, &generic)
	payload, _ := tufrepo.Canonical(generic)
	sig, err := bob.Signer.Sign(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	body := testrepo.JSON(t, api.CoSignRequest{KeyID: sig.KeyID, Sig: hexOf(sig.Signature)})
	runBadCases(t, r, []badCase{
		{name: "repeated", method: "POST", path: "/api/v1/projects/trio/pending/4/signatures?kind=maintainers", token: admin, contentType: js, body: func() []byte {
			s, _ := alice.Signer.Sign(context.Background(), payload)
			return testrepo.JSON(t, api.CoSignRequest{KeyID: s.KeyID, Sig: hexOf(s.Signature)})
		}(), status: 409, code: api.CodeSignatureRepeated},
		{name: "bad kind", method: "POST", path: "/api/v1/projects/trio/pending/4/signatures?kind=root", token: admin, contentType: js, body: body, status: 400, code: api.CodeBadRequest},
	})
	resp = r.Do(t, "POST", "/api/v1/projects/trio/pending/4/signatures?kind=maintainers", admin, js, body)
	if resp.Status != http.StatusCreated {
		t.Fatalf("co-signing carol's addition: %d %s", resp.Status, resp.Body)
	}
	if ids, th := delegationOf(t, r, "trio"); len(ids) != 3 || th != 2 {
		t.Fatalf("published delegation: %v threshold %d", ids, th)
	}
	var p api.Project
	json.Unmarshal(r.Do(t, "GET", "/api/v1/projects/trio", "", "", nil).Body, &p)
	if p.DelegationVersion != 4 || len(p.Maintainers) != 3 || p.Threshold != 2 || !p.Delegated {
		t.Fatalf("project: %+v", p)
	}
}
