package server_test

import (
	"crypto"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/attest/attesttest"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// keySigner is a testrepo key's private half, as a maintainer signs attestations with it.
func keySigner(t *testing.T, k *testrepo.Key) crypto.Signer {
	t.Helper()
	cs, ok := k.Signer.Signer.(crypto.Signer)
	if !ok {
		t.Fatalf("key %s: %T is not a crypto.Signer", k.ID(), k.Signer.Signer)
	}
	return cs
}

// TestKeyBasedAttestations: a bundle signed with a current maintainer key of the project
// that published the file is accepted and recorded as tuf-key:<keyid> from
// cairn-maintainer:<project>; a key the project does not delegate (a stranger's, or
// another project's maintainer's), a bundle about another file and one without an
// inclusion proof are each refused with their own code, and nothing changes.
func TestKeyBasedAttestations(t *testing.T) {
	sig := attesttest.New(t)
	u, drop, err := testdb.Create("server_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	trFile := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(trFile, sig.TrustedRoot(t), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.MaxBlobSize = 1 << 20; c.SigstoreTrustedRoot = trFile })
	t.Cleanup(drop)
	// ECDSA P-256: attesttest's log is Rekor v1's dsse type (Ed25519ph is tested end to
	// end against Rekor v2).
	maint, otherMaint, stranger := testrepo.NewKey(t, tufrepo.KeyECDSAP256), testrepo.NewKey(t, tufrepo.KeyECDSAP256), testrepo.NewKey(t, tufrepo.KeyECDSAP256)
	publish := func(project string, k *testrepo.Key, content string) attesttest.Subject {
		t.Helper()
		r.CreateProject(t, r.AdminToken, project, 1, []*testrepo.Key{k}, k)
		f := testrepo.File{Path: project + "/1.0/" + project + ".tgz", Content: []byte(content)}
		r.PutBlob(t, r.AdminToken, f.Content)
		if resp := r.Submit(t, r.AdminToken, project, testrepo.Sign(t, testrepo.Role(2, time.Now().Add(24*time.Hour), f), k)); resp.Status != http.StatusCreated {
			t.Fatalf("upload: %d %s", resp.Status, resp.Body)
		}
		return attesttest.File(project+".tgz", f.Content)
	}
	file := publish("demo", maint, "demo release bytes")
	otherFile := publish("other", otherMaint, "other release bytes")

	good := sig.KeyBundle(t, keySigner(t, maint), maint.ID(), attesttest.Options{}, file)
	res := postBundle(t, r, file.SHA256, good)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST a maintainer-key bundle: %d %s", res.Status, res.Body)
	}
	var a api.Attestation
	if err := json.Unmarshal(res.Body, &a); err != nil {
		t.Fatal(err)
	}
	if want := attest.MaintainerIdentity("demo", maint.ID()); a.Identity != want || a.Identity.SAN != "tuf-key:"+maint.ID() || a.Identity.Issuer != "cairn-maintainer:demo" {
		t.Fatalf("stored identity %+v, want %+v", a.Identity, want)
	}
	waitIndex(t, r, file.SHA256, 1)

	path := "/api/v1/attestations/" + file.SHA256
	mt := api.MediaSigstoreBundle
	runBadCases(t, r, []badCase{
		{name: "unknown key", method: http.MethodPost, path: path, token: r.AdminToken, contentType: mt, body: sig.KeyBundle(t, keySigner(t, stranger), stranger.ID(), attesttest.Options{}, file), status: 422, code: api.CodeAttestationKeyUnknown, detail: stranger.ID()},
		{name: "key of another project", method: http.MethodPost, path: path, token: r.AdminToken, contentType: mt, body: sig.KeyBundle(t, keySigner(t, otherMaint), otherMaint.ID(), attesttest.Options{}, file), status: 422, code: api.CodeAttestationKeyUnknown, detail: "not a current maintainer key"},
		{name: "a stranger's key under the maintainer's key ID", method: http.MethodPost, path: path, token: r.AdminToken, contentType: mt, body: sig.KeyBundle(t, keySigner(t, stranger), maint.ID(), attesttest.Options{}, file), status: 422, code: api.CodeAttestationNotIncluded},
		{name: "wrong digest", method: http.MethodPost, path: path, token: r.AdminToken, contentType: mt, body: sig.KeyBundle(t, keySigner(t, maint), maint.ID(), attesttest.Options{}, otherFile), status: 422, code: api.CodeAttestationSubject, detail: "another file"},
		{name: "no inclusion proof", method: http.MethodPost, path: path, token: r.AdminToken, contentType: mt, body: sig.KeyBundle(t, keySigner(t, maint), maint.ID(), attesttest.Options{NoInclusionProof: true}, file), status: 422, code: api.CodeAttestationNotIncluded, detail: "no inclusion proof"},
		{name: "maintainer of one project attests another's file", method: http.MethodPost, path: "/api/v1/attestations/" + otherFile.SHA256, token: r.AdminToken, contentType: mt, body: sig.KeyBundle(t, keySigner(t, maint), maint.ID(), attesttest.Options{}, otherFile), status: 422, code: api.CodeAttestationKeyUnknown},
	})
}
