package mirror

import (
	"regexp"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
)

// Attestations in a bundle (issue #12 carried to air-gapped sites): the repository's own
// targets that attestations are checked with, and the bundles themselves.
const (
	// MediaTypeOwnTarget is one of the repository's own TUF targets (tufrepo.OwnTargetPrefix):
	// the Sigstore trusted root at targets/_cairn/sigstore/<sha256>.trusted_root.json and a
	// file's attestation index at targets/_cairn/attestations/<sha256>.<file sha256>.json,
	// the URLs cairnd serves them at.
	MediaTypeOwnTarget = "application/vnd.cairn.own.target.v1+json"
	// MediaTypeAttestation is a Sigstore bundle, exact bytes, at
	// attestations/<file sha256>/<bundle sha256>.sigstore.json (served by cairnd --mirror at
	// /api/v1/attestations/<file sha256>/<bundle sha256>).
	MediaTypeAttestation = "application/vnd.cairn.attestation.bundle.v1+json"
	// MediaTypeAttestationRecord is the origin's reading of that bundle (api.Attestation, as
	// its list endpoint answers it) at attestations/<file sha256>/<bundle sha256>.json; the
	// verifier checks it against its own reading of the bundle.
	MediaTypeAttestationRecord = "application/vnd.cairn.attestation.record.v1+json"
)

var (
	ownTrustedRootRE = regexp.MustCompile(`^targets/_cairn/sigstore/([0-9a-f]{64})\.trusted_root\.json$`)
	ownIndexRE       = regexp.MustCompile(`^targets/_cairn/attestations/([0-9a-f]{64})\.([0-9a-f]{64})\.json$`)
	attestationRE    = regexp.MustCompile(`^attestations/([0-9a-f]{64})/([0-9a-f]{64})\.(sigstore\.json|json)$`)
)

// OwnTargetFile splits the path of one of the repository's own targets in a mirror into
// its target path and sha256.
func OwnTargetFile(path string) (targetPath, sha string, err error) {
	if m := ownTrustedRootRE.FindStringSubmatch(path); m != nil {
		return tufrepo.SigstoreTrustedRootTarget, m[1], nil
	}
	if m := ownIndexRE.FindStringSubmatch(path); m != nil {
		return tufrepo.AttestationIndexTarget(m[2]), m[1], nil
	}
	return "", "", api.Errorf(api.CodeInvalidPath, "own target %.160q is not targets/_cairn/sigstore/<sha256>.trusted_root.json or targets/_cairn/attestations/<sha256>.<file sha256>.json", path)
}

// OwnTargetPath is where the own target at targetPath with sha256 sum lives in a mirror.
func OwnTargetPath(targetPath, sum string) string {
	dir, name := splitLast(targetPath)
	return "targets/" + dir + "/" + sum + "." + name
}

func splitLast(p string) (dir, name string) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i], p[i+1:]
		}
	}
	return "", p
}

// AttestationName splits the path of an attestation file (bundle or record) into the
// file's and the bundle's sha256; record is true for the origin's reading.
func AttestationName(path string) (fileSHA256, bundleSHA256 string, record bool, err error) {
	m := attestationRE.FindStringSubmatch(path)
	if m == nil {
		return "", "", false, api.Errorf(api.CodeInvalidPath, "attestation file %.160q is not attestations/<file sha256>/<bundle sha256>.sigstore.json or .json", path)
	}
	return m[1], m[2], m[3] == "json", nil
}

// AttestationPath is where a bundle (record false) or its record lives in a mirror.
func AttestationPath(fileSHA256, bundleSHA256 string, record bool) string {
	if record {
		return "attestations/" + fileSHA256 + "/" + bundleSHA256 + ".json"
	}
	return "attestations/" + fileSHA256 + "/" + bundleSHA256 + ".sigstore.json"
}

// checkAttestPath checks the path of an attestation-related file against its media type
// and, for content-addressed ones, its sha256.
func checkAttestPath(path, mediaType, sha256Hex string) error {
	switch mediaType {
	case MediaTypeOwnTarget:
		_, sum, err := OwnTargetFile(path)
		if err != nil {
			return err
		}
		if sha256Hex != "" && sum != sha256Hex {
			return api.Errorf(api.CodeDigestMismatch, "own target %.160q holds bytes of sha256 %s: the bundle was altered after export", path, sha256Hex)
		}
	case MediaTypeAttestation, MediaTypeAttestationRecord:
		_, b, record, err := AttestationName(path)
		if err != nil {
			return err
		}
		if record != (mediaType == MediaTypeAttestationRecord) {
			return api.Errorf(api.CodeInvalidPath, "attestation file %.160q of media type %s is not where that type belongs", path, mediaType)
		}
		if !record && sha256Hex != "" && b != sha256Hex {
			return api.Errorf(api.CodeDigestMismatch, "attestation %.160q holds bytes of sha256 %s: the bundle was altered after export", path, sha256Hex)
		}
	}
	return nil
}
