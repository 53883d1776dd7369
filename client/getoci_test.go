package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A registry's answers are unsigned, but each is read one way only: a manifest or a
// referrers index that Go's case-folding decoder would read differently from another
// client is refused (exit malformed), as is a manifest whose bytes are not its digest.
func TestFetchOCIArtifactRefusesAmbiguousDocuments(t *testing.T) {
	layer := "sha256:" + strings.Repeat("ab", 32)
	manifest := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/octet-stream","digest":"` + layer + `","size":3,"annotations":{"org.opencontainers.image.title":"a.txt"}}]}`
	digestOf := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	for _, tc := range []struct {
		name, manifest, referrers, want string
		code                            ExitCode
	}{
		{"clean", manifest, `{"manifests":[]}`, "", 0},
		{"duplicate key in the manifest", strings.Replace(manifest, `"layers":`, `"Layers":[],"layers":`, 1), `{"manifests":[]}`, "more than one reading", ExitMalformed},
		{"case-folded key in the referrers index", manifest, `{"manifests":[],"Manifests":[{"digest":"` + layer + `","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}`, "referrers index has more than one reading", ExitMalformed},
		{"duplicate key in the referrers index", manifest, `{"manifests":[],"manifests":[]}`, "referrers index has more than one reading", ExitMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := digestOf(tc.manifest)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/v2/app/manifests/"+d:
					_, _ = w.Write([]byte(tc.manifest))
				case r.URL.Path == "/v2/app/referrers/"+d:
					_, _ = w.Write([]byte(tc.referrers))
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			ref, err := ParseOCIRef("oci://" + strings.TrimPrefix(srv.URL, "http://") + "/app@" + d)
			if err != nil {
				t.Fatal(err)
			}
			a, err := FetchOCIArtifact(context.Background(), srv.Client(), ref, "")
			if tc.want == "" {
				if err != nil || len(a.Layers) != 1 || a.Layers[0].Name != "a.txt" {
					t.Fatalf("clean artifact: %+v, %v", a, err)
				}
				return
			}
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Code != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want exit %d containing %q", err, tc.code, tc.want)
			}
		})
	}
}
