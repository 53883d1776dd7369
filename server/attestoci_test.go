package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest/attesttest"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

type ociIndex struct {
	Manifests []struct {
		MediaType    string            `json:"mediaType"`
		Digest       string            `json:"digest"`
		Size         int64             `json:"size"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"manifests"`
}

func referrersOf(t *testing.T, r *testrepo.Repo, repo, digest, artifactType string) (ociIndex, http.Header) {
	t.Helper()
	path := "/v2/" + repo + "/referrers/" + digest
	if artifactType != "" {
		path += "?artifactType=" + url.QueryEscape(artifactType)
	}
	res := r.Do(t, http.MethodGet, path, "", "", nil)
	var idx ociIndex
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &idx) != nil {
		t.Fatalf("GET %s: %d %s", path, res.Status, res.Body)
	}
	return idx, res.Header
}

// holdPublisher takes the publisher's lock (store.publisherLockID) until the returned
// function is called, so that the server's own publisher cannot commit what the test posts
// in between.
func holdPublisher(t *testing.T, r *testrepo.Repo) func() {
	t.Helper()
	ctx := context.Background()
	tx, err := r.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(0x636169726e707562)); err != nil {
		t.Fatal(err)
	}
	return func() { _ = tx.Rollback(ctx) }
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// committedBundles reads a file's attestation index the way a TUF client does: the newest
// published index role, the index target's signed hash, the bytes under it.
func committedBundles(t *testing.T, r *testrepo.Repo, file string) []string {
	t.Helper()
	ctx := context.Background()
	m, err := r.DB.LatestPublished(ctx, tufrepo.AttestationShardRole(tufrepo.AttestationShard(file)))
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.Targets().FromBytes(m.Raw)
	if err != nil {
		t.Fatal(err)
	}
	tf := md.Signed.Targets[tufrepo.AttestationIndexTarget(file)]
	if tf == nil {
		t.Fatalf("index role %s commits no index for %s", m.Role, file)
	}
	raw, err := r.DB.AttestationIndexBytes(ctx, file, hex.EncodeToString(tf.Hashes["sha256"]))
	if err != nil {
		t.Fatal(err)
	}
	var idx tufrepo.AttestationIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Bundles
}

// TestAttestationsAsOCIReferrers: the attestations that TUF commits for a release file are
// referrers of the release's OCI manifest, in cosign's bundle layout, byte-identical to
// what api.AttestationManifest rebuilds from the release manifest and the committed
// bundles; their layer is the exact stored bundle. A posted but unpublished attestation is
// not a referrer, the artifactType filter applies, and the OCI API cannot delete one.
func TestAttestationsAsOCIReferrers(t *testing.T) {
	sig := attesttest.New(t)
	r, file := attestRepo(t, sig, func(c *daemon.Config) { c.OCIAnonymousPull = true })
	ctx := context.Background()
	rel := r.Do(t, http.MethodGet, "/v2/demo/manifests/1.0", "", "", nil)
	if rel.Status != http.StatusOK {
		t.Fatalf("release manifest: %d %s", rel.Status, rel.Body)
	}
	relDigest := "sha256:" + sha256Hex(rel.Body)

	release := holdPublisher(t, r)
	bundles := map[string][]byte{} // bundle sha256 → bytes
	predicates := map[string]string{}
	for _, b := range []struct {
		who, predicate string
	}{{attAlice, "https://slsa.dev/provenance/v1"}, {attBob, "https://cairn.dev/review/v1"}} {
		raw := sig.Bundle(t, b.who, attIssuer, attesttest.Options{PredicateType: b.predicate}, file)
		if res := postBundle(t, r, file.SHA256, raw); res.Status != http.StatusCreated {
			t.Fatalf("POST: %d %s", res.Status, res.Body)
		}
		bundles[sha256Hex(raw)] = raw
		predicates[sha256Hex(raw)] = b.predicate
	}
	// Posted, not yet committed by a publish: no referrer.
	if idx, _ := referrersOf(t, r, "demo", relDigest, ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers before the index was published: %+v", idx)
	}
	release()
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	committed := committedBundles(t, r, file.SHA256)
	if len(committed) != 2 {
		t.Fatalf("index commits %v", committed)
	}

	idx, hdr := referrersOf(t, r, "demo", relDigest, api.ArtifactTypeSigstoreBundle)
	if hdr.Get("OCI-Filters-Applied") != "artifactType" || len(idx.Manifests) != len(committed) {
		t.Fatalf("referrers filtered by the bundle type: %s %+v", hdr.Get("OCI-Filters-Applied"), idx)
	}
	var listed []string
	for _, d := range idx.Manifests {
		if d.MediaType != api.MediaTypeOCIManifest || d.ArtifactType != api.ArtifactTypeSigstoreBundle ||
			d.Annotations[api.AnnotationBundleContent] != "dsse-envelope" || d.Annotations[api.AnnotationAttestedFile] != "demo.tgz" ||
			d.Annotations[api.AnnotationAttestedFileDigest] != "sha256:"+file.SHA256 {
			t.Fatalf("referrer descriptor: %+v", d)
		}
		m := r.Do(t, http.MethodGet, "/v2/demo/manifests/"+d.Digest, "", "", nil)
		if m.Status != http.StatusOK || "sha256:"+sha256Hex(m.Body) != d.Digest || int64(len(m.Body)) != d.Size || m.Header.Get("Content-Type") != api.MediaTypeOCIManifest {
			t.Fatalf("referrer manifest %s: %d %s", d.Digest, m.Status, m.Body)
		}
		var doc struct {
			ArtifactType string `json:"artifactType"`
			Layers       []struct {
				MediaType string `json:"mediaType"`
				Digest    string `json:"digest"`
				Size      int64  `json:"size"`
			} `json:"layers"`
			Subject struct {
				Digest string `json:"digest"`
				Size   int64  `json:"size"`
			} `json:"subject"`
		}
		if err := json.Unmarshal(m.Body, &doc); err != nil || len(doc.Layers) != 1 || doc.Layers[0].MediaType != api.MediaSigstoreBundle ||
			doc.Subject.Digest != relDigest || doc.Subject.Size != int64(len(rel.Body)) {
			t.Fatalf("referrer manifest content: %s", m.Body)
		}
		bsum := doc.Layers[0].Digest[len("sha256:"):]
		raw, ok := bundles[bsum]
		if !ok {
			t.Fatalf("referrer %s names bundle %s, which was not posted", d.Digest, bsum)
		}
		// Deterministic: what a client rebuilds from TUF data and the bundle.
		want := api.AttestationManifest(rel.Body, api.AttestationRef{FileName: "demo.tgz", FileSHA256: file.SHA256, BundleSHA256: bsum, BundleSize: int64(len(raw)), PredicateType: predicates[bsum]})
		if !bytes.Equal(m.Body, want) || d.Annotations[api.AnnotationBundlePredicateType] != predicates[bsum] {
			t.Fatalf("referrer manifest is not the rebuilt one:\n got %s\nwant %s", m.Body, want)
		}
		if again := r.Do(t, http.MethodGet, "/v2/demo/manifests/"+d.Digest, "", "", nil); !bytes.Equal(again.Body, m.Body) {
			t.Fatal("the referrer manifest changed between two reads")
		}
		blob := r.Do(t, http.MethodGet, "/v2/demo/blobs/"+doc.Layers[0].Digest, "", "", nil)
		if blob.Status != http.StatusOK || !bytes.Equal(blob.Body, raw) || doc.Layers[0].Size != int64(len(raw)) {
			t.Fatalf("bundle layer %s: %d (%d bytes, want %d)", doc.Layers[0].Digest, blob.Status, len(blob.Body), len(raw))
		}
		listed = append(listed, bsum)
		// The OCI API cannot remove a committed attestation.
		if del := r.Do(t, http.MethodDelete, "/v2/demo/manifests/"+d.Digest, r.AdminToken, "", nil); del.Status != http.StatusForbidden || !bytes.Contains(del.Body, []byte("DENIED")) {
			t.Fatalf("DELETE of a committed attestation's manifest: %d %s", del.Status, del.Body)
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, committed) {
		t.Fatalf("referrers name bundles %v; the TUF index commits %v", listed, committed)
	}
	if all, _ := referrersOf(t, r, "demo", relDigest, ""); len(all.Manifests) != len(committed) {
		t.Fatalf("unfiltered referrers: %+v", all)
	}
	if other, hdr := referrersOf(t, r, "demo", relDigest, "application/spdx+json"); len(other.Manifests) != 0 || hdr.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("referrers of another artifact type: %+v", other)
	}

	// A third attestation is a referrer only once a publish commits it.
	release = holdPublisher(t, r)
	third := sig.Bundle(t, attAlice, attIssuer, attesttest.Options{PredicateType: "https://spdx.dev/Document"}, file)
	if res := postBundle(t, r, file.SHA256, third); res.Status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.Status, res.Body)
	}
	if idx, _ := referrersOf(t, r, "demo", relDigest, ""); len(idx.Manifests) != 2 {
		t.Fatalf("referrers after an unpublished post: %d", len(idx.Manifests))
	}
	if blob := r.Do(t, http.MethodGet, "/v2/demo/blobs/sha256:"+sha256Hex(third), "", "", nil); blob.Status != http.StatusNotFound {
		t.Fatalf("the uncommitted bundle as a blob: %d", blob.Status)
	}
	release()
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if idx, _ := referrersOf(t, r, "demo", relDigest, ""); len(idx.Manifests) != 3 || len(committedBundles(t, r, file.SHA256)) != 3 {
		t.Fatalf("referrers after the publish: %d", len(idx.Manifests))
	}
	// A bundle of another file, or of no release of this repository, is no blob of it.
	if blob := r.Do(t, http.MethodGet, "/v2/other/blobs/sha256:"+sha256Hex(third), "", "", nil); blob.Status != http.StatusNotFound {
		t.Fatalf("a committed bundle through another repository: %d", blob.Status)
	}
}
