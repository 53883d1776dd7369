package cli

import (
	"crypto"
	"fmt"
	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"net/url"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/client"
)

// getOCI is 'cairn get oci://REGISTRY/REPO@sha256:DIGEST' (client/getoci.go): fetch by
// digest, verify the attached bundles against the trusted root from TUF, apply the policy
// per layer, and only then write the layers.
func (a *app) getOCI(arg, dir, layout string, keyFiles []string, pf *policyFlags, output string) error {
	keys, err := readPublicKeys(keyFiles)
	if err != nil {
		return err
	}
	ref, err := client.ParseOCIRef(arg) // after the keys: local input first
	if err != nil {
		return err
	}
	project, _, _ := strings.Cut(ref.Repo, "/")
	rules, err := a.policyRules(pf, project)
	if err != nil {
		return err
	}
	repo, err := a.repo()
	if err != nil {
		return err
	}
	hc, err := a.httpClient()
	if err != nil {
		return err
	}
	// The Cairn token goes only to the configured Cairn server's registry, never to
	// another registry an oci:// reference names.
	token := ""
	if su, err := url.Parse(repo.Server()); err == nil {
		if ru, err := url.Parse(ref.Base); err == nil && ru.Host == su.Host {
			token = a.tokenValue()
		}
	}
	art, err := client.FetchOCIArtifact(a.ctx, hc, ref, token)
	if err != nil {
		return err
	}
	if ref.Tag != "" {
		a.notef("Tag %s resolved to %s; tags can move: pin oci://%s to fetch exactly this again.\n", ref.Tag, art.Ref.Digest, art.Ref.String())
	}
	if len(art.Bundles) > 0 || !rules.Empty() || len(keys) > 0 {
		tr, err := repo.SigstoreTrustedRoot(a.ctx)
		if err != nil {
			return err
		}
		for _, l := range art.Layers {
			as, refused := art.Attestations(tr, l, keys)
			if err := rules.Evaluate(as); err != nil {
				return &client.VerifyError{Code: client.ExitPolicy, Target: l.Name, Detail: err.Error() + " (nothing was written)", Err: err}
			}
			if len(keys) > 0 && !slices.ContainsFunc(as, func(v client.VerifiedAttestation) bool { return v.Identity.Issuer == attest.LocalKeyIssuer }) {
				return &client.VerifyError{Code: client.ExitPolicy, Target: l.Name, Detail: fmt.Sprintf("no attestation of %s verifies with the --key given (%s); nothing was written", l.Name, strings.Join(keyFiles, ", "))}
			}
			ids := map[string]bool{}
			for _, v := range as {
				ids[v.Identity.String()] = true
			}
			a.notef("%s: %d verified attestations from %d distinct identities", l.Name, len(as), len(ids))
			if refused > 0 {
				a.notef(" (%d attached bundles did not verify and were ignored)", refused)
			}
			a.notef(".\n")
		}
	}
	var files []client.DownloadedFile
	if layout != "" {
		files, err = client.WriteOCILayout(a.ctx, hc, art, token, layout)
	} else {
		files, err = client.DownloadOCILayers(a.ctx, hc, art, token, dir)
	}
	if err != nil {
		return err
	}
	if output == "json" {
		return a.printJSON(files)
	}
	a.notef("Fetched %s by digest; every layer matched its digest.\n", art.Ref)
	if layout != "" {
		a.notef("Wrote it as an OCI image layout in %s.\n", layout)
	}
	for _, f := range files {
		a.printf("%s\t%d bytes\tsha256 %s\n", f.LocalPath, f.Length, f.SHA256)
	}
	return nil
}

// readPublicKeys reads --key files: PEM public keys (cosign.pub), each at most 64 KiB.
func readPublicKeys(files []string) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for _, f := range files {
		raw, err := readBounded(f, 64<<10)
		if err != nil {
			return nil, fmt.Errorf("--key %s: %w", f, err)
		}
		k, err := cryptoutils.UnmarshalPEMToPublicKey(raw)
		if err != nil {
			return nil, api.Wrap(api.CodeInvalidKey, err, "--key %s is not a PEM public key (cosign.pub): %v", f, err)
		}
		out = append(out, k)
	}
	return out, nil
}
