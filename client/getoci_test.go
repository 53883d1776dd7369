package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/cairn-dev/cairn/api"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A registry's answers are unsigned, but each is read one way only: a manifest or a
// referrers index that Go's case-folding decoder would read differently from another
// client is refused (exit malformed), as is a manifest whose bytes are not its digest.
func TestFetchOCIArtifactRefusesAmbiguousDocuments(t *testing.T) {
	layer := "sha256:" + strings.Repeat("ab", 32)
	manifest := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/octet-stream","digest":"` + layer + `","size":3,"annotations":{"org.opencontainers.image.title":"a.txt"}}]}`
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
			d := digestOfString(tc.manifest)
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
			a, err := fetchFrom(t, srv, "@"+d)
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

func TestParseOCIRef(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in, str, tag, err string
	}{
		{"oci://127.0.0.1:5000/app@" + d, "127.0.0.1:5000/app@" + d, "", ""},
		{"oci://127.0.0.1:5000/org/app:v1.2", "127.0.0.1:5000/org/app:v1.2", "v1.2", ""},
		{"oci://localhost:5000/app:latest", "localhost:5000/app:latest", "latest", ""},
		{"oci://127.0.0.1:5000/app", "", "", "neither a digest nor a tag"},
		{"oci://127.0.0.1:5000/app:-bad", "", "", "is not a tag"},
		{"oci://127.0.0.1:5000/app:" + strings.Repeat("t", 129), "", "", "is not a tag"},
		{"oci://127.0.0.1:5000/app@sha512:" + strings.Repeat("ab", 64), "", "", "sha256"},
		{"oci://127.0.0.1:5000/app@sha256:XY", "", "", "sha256"},
		{"oci://example.org", "", "", "names no repository"},
		{"https://example.org/app@" + d, "", "", "not an oci:// reference"},
		{"oci://example.org/app?x=1:tag", "", "", "not a repository name"},
	} {
		r, err := ParseOCIRef(tc.in)
		switch {
		case tc.err == "" && (err != nil || r.String() != tc.str || r.Tag != tc.tag):
			t.Errorf("ParseOCIRef(%q) = %+v (%s), %v", tc.in, r, r.String(), err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseOCIRef(%q): error %v, want one containing %q", tc.in, err, tc.err)
		}
	}
}

// A layout is written only when every blob verified: a layer whose bytes are not its
// digest leaves the directory empty.
func TestWriteOCILayoutRefusesATamperedLayer(t *testing.T) {
	good := []byte("the layer")
	sum := sha256.Sum256(good)
	layer := "sha256:" + hex.EncodeToString(sum[:])
	manifest := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/octet-stream","digest":"` + layer + `","size":9,"annotations":{"org.opencontainers.image.title":"a.txt"}}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/app/manifests/v1":
			_, _ = w.Write([]byte(manifest))
		case "/v2/app/blobs/" + layer:
			_, _ = w.Write([]byte("the LAYER")) // same size, other bytes
		case "/v2/app/referrers/" + digestOfString(manifest):
			_, _ = w.Write([]byte(`{"manifests":[]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	a, err := fetchFrom(t, srv, ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Ref.Digest != digestOfString(manifest) {
		t.Fatalf("the tag resolved to %s", a.Ref.Digest)
	}
	dir := t.TempDir()
	_, err = WriteOCILayout(context.Background(), srv.Client(), a, "", dir)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Code != ExitHashMismatch {
		t.Fatalf("error %v, want a hash mismatch", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the refused layout left %d entries in %s", len(ents), dir)
	}
}

func digestOfString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// A registry without the referrers API answers 404 there; the referrers then come from
// the tag schema (an index tagged sha256-<hex>), as oras and cosign write it. With no such
// tag there are none, and that is no error.
func TestFetchOCIArtifactReferrersTagSchema(t *testing.T) {
	layer := digestOfString("the layer")
	manifest := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/octet-stream","digest":"` + layer + `","size":9,"annotations":{"org.opencontainers.image.title":"a.txt"}}]}`
	bundle := `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`
	referrer := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"` + api.ArtifactTypeSigstoreBundle + `","layers":[{"mediaType":"` + api.MediaSigstoreBundle + `","digest":"` + digestOfString(bundle) + `","size":` + strconv.Itoa(len(bundle)) + `}]}`
	d := digestOfString(manifest)
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"` + api.ArtifactTypeSigstoreBundle + `","digest":"` + digestOfString(referrer) + `","size":` + strconv.Itoa(len(referrer)) + `}]}`
	for _, tc := range []struct {
		name    string
		tagged  bool
		bundles int
	}{{"tag schema index", true, 1}, {"no referrers at all", false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v2/app/manifests/" + d:
					_, _ = w.Write([]byte(manifest))
				case "/v2/app/manifests/sha256-" + strings.TrimPrefix(d, "sha256:"):
					if !tc.tagged {
						http.NotFound(w, r)
						return
					}
					_, _ = w.Write([]byte(index))
				case "/v2/app/manifests/" + digestOfString(referrer):
					_, _ = w.Write([]byte(referrer))
				case "/v2/app/blobs/" + digestOfString(bundle):
					_, _ = w.Write([]byte(bundle))
				default: // the referrers API among them
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			a, err := fetchFrom(t, srv, "@"+d)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Bundles) != tc.bundles || (tc.bundles == 1 && string(a.Bundles[0].Raw) != bundle) {
				t.Fatalf("bundles %+v, want %d", a.Bundles, tc.bundles)
			}
		})
	}
}

// A registry that wants a bearer token even for pulls (ghcr.io, Docker Hub) answers 401
// with a challenge; oci:// asks the token service it names once, anonymously, and goes on
// with the token. A token service that refuses ends the fetch with unauthorized.
func TestFetchOCIArtifactBearerChallenge(t *testing.T) {
	layer := "the layer"
	manifest := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/octet-stream","digest":"` + digestOfString(layer) + `","size":9,"annotations":{"org.opencontainers.image.title":"a.txt"}}]}`
	d := digestOfString(manifest)
	for _, tc := range []struct {
		name       string
		tokenOK    bool
		wantTokens int
	}{{"token granted", true, 1}, {"token refused", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			tokens := 0
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/token" {
					tokens++
					if r.URL.Query().Get("scope") != "repository:app:pull" || r.URL.Query().Get("service") != "test-registry" || r.Header.Get("Authorization") != "" {
						http.Error(w, "bad token request", http.StatusBadRequest)
						return
					}
					if !tc.tokenOK {
						http.Error(w, "denied", http.StatusForbidden)
						return
					}
					_, _ = w.Write([]byte(`{"token":"t0k3n"}`))
					return
				}
				if r.Header.Get("Authorization") != "Bearer t0k3n" {
					w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test-registry",scope="repository:app:pull"`)
					http.Error(w, "unauthorized", http.StatusUnauthorized)
					return
				}
				switch r.URL.Path {
				case "/v2/app/manifests/" + d:
					_, _ = w.Write([]byte(manifest))
				case "/v2/app/blobs/" + digestOfString(layer):
					_, _ = w.Write([]byte(layer))
				case "/v2/app/referrers/" + d:
					_, _ = w.Write([]byte(`{"manifests":[]}`))
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			a, err := fetchFrom(t, srv, "@"+d)
			if !tc.tokenOK {
				if api.CodeOf(err) != api.CodeUnauthorized || tokens != tc.wantTokens {
					t.Fatalf("error %v after %d token requests, want unauthorized after %d", err, tokens, tc.wantTokens)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			files, err := DownloadOCILayers(context.Background(), srv.Client(), a, "", t.TempDir())
			if err != nil || len(files) != 1 {
				t.Fatalf("download with a bearer token: %v %v", files, err)
			}
			if tokens != 2 { // one per getter: the fetch and the download
				t.Errorf("%d token requests, want one per getter (2)", tokens)
			}
		})
	}
}

func TestParseChallenge(t *testing.T) {
	got := parseChallenge(`realm="https://auth.example/token",service="registry.example", scope="repository:a/b:pull,push"`)
	if got["realm"] != "https://auth.example/token" || got["service"] != "registry.example" || got["scope"] != "repository:a/b:pull,push" {
		t.Errorf("parseChallenge = %v", got)
	}
	if got := parseChallenge(`realm=https://x/t,service=s`); got["realm"] != "https://x/t" || got["service"] != "s" {
		t.Errorf("unquoted: %v", got)
	}
}

// fetchFrom fetches oci://<srv>/app<suffix> (a tag as ":v1" or a digest as "@sha256:…")
// with srv's client.
func fetchFrom(t *testing.T, srv *httptest.Server, suffix string) (*OCIArtifact, error) {
	t.Helper()
	ref, err := ParseOCIRef("oci://" + strings.TrimPrefix(srv.URL, "http://") + "/app" + suffix)
	if err != nil {
		t.Fatal(err)
	}
	return FetchOCIArtifact(context.Background(), srv.Client(), ref, "")
}
