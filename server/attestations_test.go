package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

const (
	attIssuer = "https://accounts.example.com"
	attAlice  = "alice@example.com"
	attBob    = "bob@example.org"
)

// attestRepo boots a server whose trusted root is sig's, with project demo publishing
// demo/1.0/demo.tgz; it returns the file's subject. opts change the configuration further.
func attestRepo(t *testing.T, sig *attesttest.Sigstore, opts ...func(*daemon.Config)) (*testrepo.Repo, attesttest.Subject) {
	t.Helper()
	u, drop, err := testdb.Create("server_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	trFile := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(trFile, sig.TrustedRoot(t), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) {
		c.MaxBlobSize = 1 << 20
		c.SigstoreTrustedRoot = trFile
		for _, o := range opts {
			o(c)
		}
	})
	t.Cleanup(drop)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	f := testrepo.File{Path: "demo/1.0/demo.tgz", Content: []byte("demo release bytes")}
	r.PutBlob(t, r.AdminToken, f.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(24*time.Hour), f), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.Status, resp.Body)
	}
	return r, attesttest.File("demo.tgz", f.Content)
}

func postBundle(t *testing.T, r *testrepo.Repo, file string, raw []byte) testrepo.Response {
	t.Helper()
	path := "/api/v1/attestations/" + file
	res := r.Do(t, http.MethodPost, path, r.AdminToken, api.MediaSigstoreBundle, raw)
	checkOpenAPI(t, http.MethodPost, path, &http.Response{StatusCode: res.Status, Header: res.Header}, res.Body)
	return res
}

func TestAttestationsPostListFetchSummary(t *testing.T) {
	sig := attesttest.New(t)
	r, file := attestRepo(t, sig)
	provenance := sig.Bundle(t, attAlice, attIssuer, attesttest.Options{}, file)
	review := sig.Bundle(t, attBob, attIssuer, attesttest.Options{PredicateType: "https://cairn.dev/review/v1", Timestamp: true}, file)
	sbom := sig.Bundle(t, attAlice, attIssuer, attesttest.Options{PredicateType: "https://spdx.dev/Document"}, file)
	var stored []api.Attestation
	for _, b := range [][]byte{provenance, review, sbom} {
		res := postBundle(t, r, file.SHA256, b)
		if res.Status != http.StatusCreated {
			t.Fatalf("POST: %d %s", res.Status, res.Body)
		}
		var a api.Attestation
		if err := json.Unmarshal(res.Body, &a); err != nil {
			t.Fatal(err)
		}
		if res.Header.Get("Location") != "/api/v1/attestations/"+file.SHA256+"/"+a.BundleSHA256 {
			t.Errorf("Location %q", res.Header.Get("Location"))
		}
		stored = append(stored, a)
	}
	if stored[0].Identity != (api.SignerIdentity{SAN: attAlice, Issuer: attIssuer}) || stored[1].PredicateType != "https://cairn.dev/review/v1" {
		t.Errorf("stored %+v", stored)
	}

	// List, in pages of 2.
	var list api.AttestationList
	res := r.Do(t, http.MethodGet, "/api/v1/attestations/"+file.SHA256+"?limit=2", "", "", nil)
	checkOpenAPI(t, http.MethodGet, "/api/v1/attestations/"+file.SHA256, &http.Response{StatusCode: res.Status, Header: res.Header}, res.Body)
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &list) != nil || len(list.Attestations) != 2 || list.Next == 0 {
		t.Fatalf("list: %d %s", res.Status, res.Body)
	}
	res = r.Do(t, http.MethodGet, "/api/v1/attestations/"+file.SHA256+"?limit=2&after="+itoa(list.Next), "", "", nil)
	var page2 api.AttestationList
	if json.Unmarshal(res.Body, &page2) != nil || len(page2.Attestations) != 1 || page2.Next != 0 || page2.Attestations[0].BundleSHA256 != stored[2].BundleSHA256 {
		t.Fatalf("page 2: %d %s", res.Status, res.Body)
	}

	// Fetch: the exact bytes, which verify again.
	for i, b := range [][]byte{provenance, review, sbom} {
		path := "/api/v1/attestations/" + file.SHA256 + "/" + stored[i].BundleSHA256
		res := r.Do(t, http.MethodGet, path, "", "", nil)
		checkOpenAPI(t, http.MethodGet, path, &http.Response{StatusCode: res.Status, Header: res.Header}, res.Body)
		if res.Status != http.StatusOK || !bytes.Equal(res.Body, b) || res.Header.Get("Content-Type") != api.MediaSigstoreBundle {
			t.Errorf("GET %s: %d, %d bytes (want the %d posted)", path, res.Status, len(res.Body), len(b))
		}
	}
	if res := r.Do(t, http.MethodGet, "/api/v1/attestations/"+file.SHA256+"/"+file.SHA256, "", "", nil); res.Status != http.StatusNotFound {
		t.Errorf("unknown bundle: %d", res.Status)
	}

	// Summary: two distinct identities, three predicate types.
	var sum api.AttestationSummary
	res = r.Do(t, http.MethodGet, "/api/v1/attestations/"+file.SHA256+"/summary", "", "", nil)
	checkOpenAPI(t, http.MethodGet, "/api/v1/attestations/"+file.SHA256+"/summary", &http.Response{StatusCode: res.Status, Header: res.Header}, res.Body)
	if err := json.Unmarshal(res.Body, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Count != 3 || len(sum.Identities) != 2 || len(sum.PredicateTypes) != 3 || sum.FirstLogTime == nil || sum.LastLogTime.Before(*sum.FirstLogTime) {
		t.Fatalf("summary %s", res.Body)
	}
	if got := sum.Identities[0]; got.SAN != attAlice || got.Count != 2 || len(got.PredicateTypes) != 2 {
		t.Errorf("first identity %+v, want alice with 2", got)
	}
	// A file with none: an empty summary, not an error.
	empty := attesttest.File("x", []byte("nothing"))
	res = r.Do(t, http.MethodGet, "/api/v1/attestations/"+empty.SHA256+"/summary", "", "", nil)
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &sum) != nil || sum.Count != 0 || sum.Identities == nil {
		t.Errorf("empty summary: %d %s", res.Status, res.Body)
	}
}

// TestAttestationBadInputChangesNothing is the write path's bad-input table: each refusal
// has its specific code and leaves every table and blob as it was.
func TestAttestationBadInputChangesNothing(t *testing.T) {
	sig := attesttest.New(t)
	r, file := attestRepo(t, sig)
	good := sig.Bundle(t, attAlice, attIssuer, attesttest.Options{}, file)
	if res := postBundle(t, r, file.SHA256, good); res.Status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.Status, res.Body)
	}
	// The post's publish (the index) must be done before the state is compared.
	waitIndex(t, r, file.SHA256, 1)
	// The same signature re-serialised (other key order, spaces) is the same attestation.
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	reserialised, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	unpublished := attesttest.File("never-uploaded.tgz", []byte("not a release file"))
	path := "/api/v1/attestations/" + file.SHA256
	tok := r.AdminToken
	mt := api.MediaSigstoreBundle
	runBadCases(t, r, []badCase{
		{name: "no token", method: http.MethodPost, path: path, contentType: mt, body: good, status: 401, code: api.CodeUnauthorized},
		{name: "wrong digest", method: http.MethodPost, path: path, token: tok, contentType: mt, body: sig.Bundle(t, attAlice, attIssuer, attesttest.Options{}, unpublished), status: 422, code: api.CodeAttestationSubject, detail: "another file"},
		{name: "not a published file", method: http.MethodPost, path: "/api/v1/attestations/" + unpublished.SHA256, token: tok, contentType: mt, body: sig.Bundle(t, attAlice, attIssuer, attesttest.Options{}, unpublished), status: 404, code: api.CodeNotFound, detail: "published release file"},
		{name: "no inclusion proof", method: http.MethodPost, path: path, token: tok, contentType: mt, body: sig.Bundle(t, attAlice, attIssuer, attesttest.Options{NoInclusionProof: true}, file), status: 422, code: api.CodeAttestationNotIncluded, detail: "no inclusion proof"},
		{name: "expired certificate without timestamp", method: http.MethodPost, path: path, token: tok, contentType: mt, body: sig.Bundle(t, attAlice, attIssuer, attesttest.Options{LogTime: time.Now().Add(time.Hour)}, file), status: 422, code: api.CodeAttestationInvalid, detail: "was not valid"},
		{name: "another Sigstore", method: http.MethodPost, path: path, token: tok, contentType: mt, body: attesttest.New(t).Bundle(t, attAlice, attIssuer, attesttest.Options{}, file), status: 422, code: api.CodeAttestationNotIncluded},
		{name: "oversized", method: http.MethodPost, path: path, token: tok, contentType: mt, body: append(bytes.Repeat([]byte(" "), attest.MaxBundleBytes), good...), status: 413, code: api.CodeTooLarge},
		{name: "oversized chunked", method: http.MethodPost, path: path, token: tok, contentType: mt, body: append(bytes.Repeat([]byte(" "), attest.MaxBundleBytes), good...), chunked: true, status: 413, code: api.CodeTooLarge},
		{name: "malformed", method: http.MethodPost, path: path, token: tok, contentType: mt, body: good[:len(good)/2], status: 400, code: api.CodeBundleMalformed},
		{name: "duplicate key", method: http.MethodPost, path: path, token: tok, contentType: mt, body: append([]byte(`{"mediaType":"x",`), good[1:]...), status: 400, code: api.CodeAmbiguousJSON},
		{name: "unknown bundle media type", method: http.MethodPost, path: path, token: tok, contentType: mt, body: sig.Bundle(t, attAlice, attIssuer, attesttest.Options{MediaType: "application/vnd.dev.sigstore.bundle.v9.9+json"}, file), status: 415, code: api.CodeBundleMediaType},
		{name: "unknown content type", method: http.MethodPost, path: path, token: tok, contentType: "text/plain", body: good, status: 415, code: api.CodeUnsupported},
		{name: "duplicate bundle", method: http.MethodPost, path: path, token: tok, contentType: mt, body: good, status: 409, code: api.CodeAttestationExists, detail: "bundle"},
		{name: "duplicate signature re-serialised", method: http.MethodPost, path: path, token: tok, contentType: mt, body: reserialised, status: 409, code: api.CodeAttestationExists, detail: "signature"},
		{name: "bad digest in path", method: http.MethodPost, path: "/api/v1/attestations/ABC", token: tok, contentType: mt, body: good, status: 400, code: api.CodeBadRequest},
	})
}

func TestAttestationsOffWithoutTrustedRoot(t *testing.T) {
	r := freshRepo(t)
	path := "/api/v1/attestations/" + sha([]byte("x"))
	runBadCases(t, r, []badCase{
		{name: "off", method: http.MethodPost, path: path, token: r.AdminToken, contentType: api.MediaSigstoreBundle, body: []byte(`{}`), status: 404, code: api.CodeAttestationsOff, detail: "--sigstore-trusted-root"},
	})
}

// TestTrustedRootIsATUFTarget: go-tuf's updater finds the configured trusted root as the
// target _cairn/sigstore/trusted_root.json and downloads it verified; a new root replaces
// it in the next publish, and the old one stays served under its hash.
func TestTrustedRootIsATUFTarget(t *testing.T) {
	sig := attesttest.New(t)
	r, _ := attestRepo(t, sig)
	want, err := os.ReadFile(r.Config.SigstoreTrustedRoot)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func() []byte {
		t.Helper()
		u := newUpdater(t, r)
		if err := u.Refresh(); err != nil {
			t.Fatal(err)
		}
		ti, err := u.GetTargetInfo(tufrepo.SigstoreTrustedRootTarget)
		if err != nil {
			t.Fatalf("the trusted root is not a TUF target: %v", err)
		}
		_, got, err := u.DownloadTarget(ti, filepath.Join(t.TempDir(), "trusted_root.json"), "")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// The publish that the start kicked may still run: wait for the target to appear.
	deadline := time.Now().Add(20 * time.Second)
	for {
		u := newUpdater(t, r)
		if err := u.Refresh(); err == nil {
			if _, err := u.GetTargetInfo(tufrepo.SigstoreTrustedRootTarget); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the trusted root was never published")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := fetch(); !bytes.Equal(got, want) {
		t.Fatalf("downloaded %d bytes, want the configured %d", len(got), len(want))
	}

	// Rotation: another root becomes current with the next publish.
	next := attesttest.New(t).TrustedRoot(t)
	ctx := t.Context()
	if changed, err := r.DB.SetSigstoreTrustedRoot(ctx, next); err != nil || !changed {
		t.Fatalf("SetSigstoreTrustedRoot: %v %v", changed, err)
	}
	if changed, err := r.DB.SetSigstoreTrustedRoot(ctx, next); err != nil || changed {
		t.Fatalf("setting the same root again: changed %v, %v", changed, err)
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fetch(); !bytes.Equal(got, next) {
		t.Fatalf("after rotation downloaded %d bytes, want the new %d", len(got), len(next))
	}
	// The old root's immutable URL still answers; a made-up hash does not.
	old := "/targets/_cairn/sigstore/" + sha(want) + ".trusted_root.json"
	if res := r.Do(t, http.MethodGet, old, "", "", nil); res.Status != http.StatusOK || !bytes.Equal(res.Body, want) {
		t.Errorf("GET %s: %d", old, res.Status)
	}
	for _, p := range []string{"/targets/_cairn/sigstore/" + sha([]byte("x")) + ".trusted_root.json", "/targets/_cairn/other/" + sha(want) + ".trusted_root.json"} {
		if res := r.Do(t, http.MethodGet, p, "", "", nil); res.Status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, res.Status)
		}
	}
}

// waitIndex refreshes a go-tuf updater until the index target of file lists n bundles, and
// returns the index it downloaded (verified by go-tuf: signatures, snapshot, hashes).
func waitIndex(t *testing.T, r *testrepo.Repo, file string, n int) tufrepo.AttestationIndex {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		u := newUpdater(t, r)
		if err := u.Refresh(); err != nil {
			t.Fatal(err)
		}
		if ti, err := u.GetTargetInfo(tufrepo.AttestationIndexTarget(file)); err == nil {
			_, raw, err := u.DownloadTarget(ti, filepath.Join(t.TempDir(), "index.json"), "")
			if err != nil {
				t.Fatal(err)
			}
			var idx tufrepo.AttestationIndex
			if err := json.Unmarshal(raw, &idx); err != nil {
				t.Fatal(err)
			}
			if len(idx.Bundles) == n {
				return idx
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the index of %s never listed %d bundles", file, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAttestationIndexIsCommittedThroughTUF: every stored attestation is listed in the
// file's index target, which a standard TUF client downloads and verifies.
func TestAttestationIndexIsCommittedThroughTUF(t *testing.T) {
	sig := attesttest.New(t)
	r, file := attestRepo(t, sig)
	var want []string
	for i, who := range []string{attAlice, attBob} {
		res := postBundle(t, r, file.SHA256, sig.Bundle(t, who, attIssuer, attesttest.Options{}, file))
		if res.Status != http.StatusCreated {
			t.Fatalf("POST: %d %s", res.Status, res.Body)
		}
		var a api.Attestation
		if err := json.Unmarshal(res.Body, &a); err != nil {
			t.Fatal(err)
		}
		want = append(want, a.BundleSHA256)
		r.Server.Publisher().Kick()
		idx := waitIndex(t, r, file.SHA256, i+1)
		if idx.FileSHA256 != file.SHA256 {
			t.Fatalf("index names %s", idx.FileSHA256)
		}
		for _, b := range want {
			if !slices.Contains(idx.Bundles, b) {
				t.Errorf("index %v lacks %s", idx.Bundles, b)
			}
		}
	}
	// A file without attestations has no index target: the committed set is empty.
	u := newUpdater(t, r)
	if err := u.Refresh(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.GetTargetInfo(tufrepo.AttestationIndexTarget(sha([]byte("no such file")))); err == nil {
		t.Error("an index for a file without attestations")
	}
}
