package cli

import (
	"errors"
	"fmt"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// uploadBundle is a bundle given to 'cairn upload --attest', verified against the files it
// is about.
type uploadBundle struct {
	path   string
	raw    []byte
	sha256 string
	files  []api.File // the upload's files it attests
}

// readUploadBundles reads each --attest bundle and verifies it, offline, against the
// repository's Sigstore trusted root (through TUF) for every file of the upload that its
// statement names. A bundle that names none of them, or does not verify, stops the upload
// before anything is sent.
func (a *app) readUploadBundles(repo *client.Repo, project, version string, paths []string, files []api.File) ([]uploadBundle, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	tr, err := repo.SigstoreTrustedRoot(a.ctx)
	if err != nil {
		return nil, fmt.Errorf("--attest: %w", err)
	}
	var out []uploadBundle
	for _, p := range paths {
		raw, err := readBounded(p, attest.MaxBundleBytes)
		if err != nil {
			return nil, fmt.Errorf("--attest %s: %w; nothing was uploaded", p, err)
		}
		b := uploadBundle{path: p, raw: raw}
		for _, f := range files {
			v, err := attest.Verify(tr, raw, f.SHA256)
			if api.CodeOf(err) == api.CodeAttestationSubject {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("--attest %s (about %s): %w; nothing was uploaded", p, f.Name, err)
			}
			b.sha256 = v.BundleSHA256
			f.Path = tufrepo.TargetPath(project, version, f.Name)
			b.files = append(b.files, f)
		}
		if len(b.files) == 0 {
			return nil, api.Errorf(api.CodeAttestationSubject, "--attest %s attests none of the files uploaded (its subjects' sha256 match none); nothing was uploaded", p)
		}
		a.notef("  %s: verified, by the trusted root through TUF, for %d file(s)\n", p, len(b.files))
		out = append(out, b)
	}
	return out, nil
}

// bindUploadBundles puts each bundle's digest into the custom data of the targets it
// attests, so the maintainers' signature covers it.
func bindUploadBundles(next *metadata.Metadata[metadata.TargetsType], bundles []uploadBundle) error {
	bound := map[string][]string{}
	for _, b := range bundles {
		for _, f := range b.files {
			bound[f.Path] = append(bound[f.Path], b.sha256)
		}
	}
	return client.BindAttestations(next, bound)
}

// postUploadBundles attaches the bound bundles once the release is published (the server
// takes attestations of published files only). One already stored is fine.
func (a *app) postUploadBundles(ac *client.API, bundles []uploadBundle) error {
	for _, b := range bundles {
		for _, f := range b.files {
			if _, err := ac.PostAttestation(a.ctx, f.SHA256, b.raw); err != nil {
				var ae *api.Error
				if errors.As(err, &ae) && ae.Code == api.CodeAttestationExists {
					continue
				}
				return fmt.Errorf("the release is published with the attestation bound, but attaching %s failed (attach it again later): %w", b.path, err)
			}
		}
		a.notef("Attached %s (sha256 %s).\n", b.path, b.sha256)
	}
	return nil
}
