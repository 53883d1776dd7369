package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/attest/attesttest"
	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/mirror"
)

// TestMirrorCarriesAttestations: a release with three attestations is exported from a
// live server; with the server stopped the bundle verifies offline (every bundle against
// the TUF-delivered trusted root), imports into 'cairnd serve --mirror', and against the
// mirror 'cairn attestations' counts the same identities and 'cairn get' with a policy
// requiring two of them passes. A bundle whose attestation was replaced or dropped is
// refused by verify and import, the mirror unchanged.
func TestMirrorCarriesAttestations(t *testing.T) {
	sig := attesttest.New(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_mirror_attest", sig.TrustedRoot(t))
	ctx := context.Background()
	content := []byte("hello, world: attested and mirrored")
	releaseHello(t, maint, "1.0.0", content)
	rest, err := cairnclient.NewAPI(r.URL, cairnclient.WithToken(r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	subj := attesttest.File("hello-1.0.0.tar.gz", content)
	for _, who := range []string{"alice@hello.dev", "bob@hello.dev", "reviewer@audits.example"} {
		if _, err := rest.PostAttestation(ctx, subj.SHA256, sig.Bundle(t, who, "https://accounts.example.com", attesttest.Options{}, subj)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	live := newCLI(t, "")
	live.ok(t, "init", "--server", r.URL, "--root", rootFile)
	var want proofJSON
	if err := json.Unmarshal([]byte(live.ok(t, "attestations", "hello@1.0.0", "--output", "json")), &want); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bundle := filepath.Join(work, "bundle.tar")
	maint.ok(t, "mirror", "export", "--project", "hello", "-o", bundle)
	off := newCLI(t, "")
	var ver cairnclient.BundleVerification
	if err := json.Unmarshal([]byte(off.ok(t, "mirror", "verify", bundle, "--root", rootFile, "-o", "json")), &ver); err != nil {
		t.Fatal(err)
	}
	// A fourth attestation arrives without a role change; an incremental bundle carries it.
	if _, err := rest.PostAttestation(ctx, subj.SHA256, sig.Bundle(t, "carol@hello.dev", "https://accounts.example.com", attesttest.Options{}, subj)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	incr := filepath.Join(work, "incr.tar")
	maint.ok(t, "mirror", "export", "--project", "hello", "--since", strconv.FormatInt(ver.SnapshotVersion, 10), "-o", incr)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// From here on the source server is gone.
	if err := json.Unmarshal([]byte(off.ok(t, "mirror", "verify", bundle, "--root", rootFile, "-o", "json")), &ver); err != nil {
		t.Fatal(err)
	}
	if ver.Attestations != 3 || ver.Files != 1 {
		t.Fatalf("verify = %+v; want 3 attestations of 1 file", ver)
	}
	if out := off.ok(t, "mirror", "verify", bundle, "--root", rootFile); !strings.Contains(out, "3 attestations") {
		t.Errorf("verify's text output does not count the attestations:\n%s", out)
	}
	var iver cairnclient.BundleVerification
	if err := json.Unmarshal([]byte(off.ok(t, "mirror", "verify", incr, "--root", rootFile, "-o", "json")), &iver); err != nil {
		t.Fatal(err)
	}
	if iver.Attestations != 4 || iver.Files != 0 {
		t.Fatalf("verify of the incremental bundle = %+v; want 4 attestations of a file it leaves to the mirror", iver)
	}

	mdir := filepath.Join(work, "mirror")
	if code, out, errs := cairnd(t, "mirror", "import", bundle, "--mirror-dir", mdir, "--root", rootFile); code != 0 {
		t.Fatalf("cairnd mirror import: %d\n%s\n%s", code, out, errs)
	}
	mr, err := daemon.StartMirror(ctx, daemon.Config{Listen: "127.0.0.1:0", MirrorDir: mdir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mr.Close() })
	if resp, body := httpGet(t, mr.URL+"/api/v1/attestations/"+subj.SHA256+"?limit=2"); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"next":`) {
		t.Errorf("the mirror's first page of 2: %d %s", resp.StatusCode, body)
	}

	// A static directory gets the same files: the own targets at their /targets/ URLs
	// (TUF clients find them), the bundles under attestations/ (not served as the REST API).
	static := staticDir(t)
	off.ok(t, "mirror", "import", bundle, "--static", static, "--root", rootFile)
	for _, pat := range []string{"targets/_cairn/sigstore/*.trusted_root.json", "targets/_cairn/attestations/*." + subj.SHA256 + ".json", "attestations/" + subj.SHA256 + "/*.sigstore.json"} {
		if m, _ := filepath.Glob(filepath.Join(static, pat)); len(m) == 0 {
			t.Errorf("the static import has no %s", pat)
		}
	}

	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", mr.URL, "--root", rootFile)
	var got proofJSON
	if err := json.Unmarshal([]byte(dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != 1 || len(want.Files) != 1 || len(got.Files[0].Identities) != 3 || len(got.Files[0].Identities) != len(want.Files[0].Identities) || got.Files[0].Committed != 3 {
		t.Fatalf("against the mirror: %+v; against the live server: %+v", got, want)
	}
	dl.ok(t, "--classic-snapshot", "attestations", "hello@1.0.0")
	policy := writePolicy(t, "global:\n  trusted_identities:\n    - san_regexp: \".*@hello[.]dev\"\n      issuer: https://accounts.example.com\n  require_identities: 2\n")
	dir := t.TempDir()
	dl.ok(t, "get", "hello@1.0.0", "--policy", policy, "--output-dir", dir)
	if b, err := os.ReadFile(filepath.Join(dir, "hello-1.0.0.tar.gz")); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("get with the policy against the mirror: %q %v", b, err)
	}
	strict := writePolicy(t, "global:\n  trusted_identities:\n    - san_regexp: \".*@hello[.]dev\"\n      issuer: https://accounts.example.com\n  require_identities: 3\n")
	if code, _, errs := dl.run(t, "get", "hello@1.0.0", "--policy", strict, "--output-dir", t.TempDir()); code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "require_identities") {
		t.Errorf("get with a policy the mirror's attestations do not meet: exit %d %s", code, errs)
	}

	// Tampering: an attestation replaced (new bytes under their own digest, as an attacker
	// who rewrites the tar can make them) or dropped.
	raw, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mirror.Read(raw, t.TempDir(), mirror.Limits{})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for _, f := range b.Files {
		if f.MediaType == mirror.MediaTypeAttestation {
			victim = f.Path
			break
		}
	}
	other := sig.Bundle(t, "mallory@evil.example", "https://accounts.example.com", attesttest.Options{}, subj)
	for _, c := range []struct {
		name, want string
		edit       func(f mirror.File) (mirror.File, bool)
	}{
		{"replaced", "dropped after export", func(f mirror.File) (mirror.File, bool) {
			if f.Path != victim {
				return f, true
			}
			fs, _, _, _ := mirror.AttestationName(f.Path)
			nf := mirror.BytesFile("", "", other)
			return mirror.BytesFile(mirror.AttestationPath(fs, nf.SHA256, false), f.MediaType, other), true
		}},
		{"dropped", "dropped after export", func(f mirror.File) (mirror.File, bool) { return f, f.Path != victim }},
		{"record altered", "does not say what the bundle says", func(f mirror.File) (mirror.File, bool) {
			if f.MediaType != mirror.MediaTypeAttestationRecord {
				return f, true
			}
			raw, err := f.ReadAll(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			return mirror.BytesFile(f.Path, f.MediaType, bytes.Replace(raw, []byte("reviewer@audits.example"), []byte("root@hello.dev"), 1)), true
		}},
		{"added", "no verified attestation index", func(f mirror.File) (mirror.File, bool) { return f, true }},
	} {
		var files []mirror.File
		for _, f := range b.Files {
			if nf, keep := c.edit(f); keep {
				files = append(files, nf)
			}
		}
		if c.name == "added" {
			nf := mirror.BytesFile("", "", other)
			files = append(files, mirror.BytesFile(mirror.AttestationPath(subj.SHA256, nf.SHA256, false), mirror.MediaTypeAttestation, other))
		}
		var tb bytes.Buffer
		if err := mirror.Write(&tb, &mirror.Bundle{Info: b.Info, Files: files}); err != nil {
			t.Fatal(err)
		}
		tampered := filepath.Join(work, c.name+".tar")
		if err := os.WriteFile(tampered, tb.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := off.run(t, "mirror", "verify", tampered, "--root", rootFile)
		if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, c.want) {
			t.Errorf("verify of a bundle with an attestation %s: exit %d, %s", c.name, code, errs)
		}
		// Into a new mirror (the one above already holds the dropped attestation, verified
		// when it was imported, and rightly takes it from there).
		fresh := filepath.Join(work, "fresh-"+c.name)
		if err := os.MkdirAll(fresh, 0o755); err != nil {
			t.Fatal(err)
		}
		// The import lock file is made by any import, refused or not.
		if err := os.WriteFile(filepath.Join(fresh, ".cairn-mirror.lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		before := dirSums(t, fresh)
		if code, _, errs := cairnd(t, "mirror", "import", tampered, "--mirror-dir", fresh, "--root", rootFile); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("import of a bundle with an attestation %s: exit %d, %s", c.name, code, errs)
		}
		if after := dirSums(t, fresh); after != before {
			t.Errorf("a refused import (attestation %s) changed the mirror directory", c.name)
		}
		before = dirSums(t, mdir)
		// (A replaced one is then an unlisted addition: the listed one comes from the mirror.)
		code, _, errs = cairnd(t, "mirror", "import", tampered, "--mirror-dir", mdir)
		if c.name != "dropped" && (code == 0 || !strings.Contains(errs, "attestation")) {
			t.Errorf("import of a bundle with an attestation %s into the mirror: exit %d, %s", c.name, code, errs)
		}
		if after := dirSums(t, mdir); after != before {
			t.Errorf("an import (attestation %s) changed the mirror directory", c.name)
		}
	}
	dl.ok(t, "attestations", "hello@1.0.0")

	// The incremental bundle brings the fourth.
	if code, out, errs := cairnd(t, "mirror", "import", incr, "--mirror-dir", mdir); code != 0 {
		t.Fatalf("cairnd mirror import of the incremental bundle: %d\n%s\n%s", code, out, errs)
	}
	var after proofJSON
	if err := json.Unmarshal([]byte(dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")), &after); err != nil {
		t.Fatal(err)
	}
	if len(after.Files) != 1 || len(after.Files[0].Identities) != 4 || after.Files[0].Committed != 4 {
		t.Fatalf("after the incremental import: %+v", after)
	}
}
