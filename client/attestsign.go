package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"
)

// MaxPredicateBytes bounds the predicate 'cairn attest --predicate' reads. The statement
// travels base64-encoded in the bundle, which the server takes up to attest.MaxBundleBytes
// (1 MiB): 512 KiB of predicate leaves room for the encoding, the subjects, the
// certificate and the log entry.
const MaxPredicateBytes = 512 << 10

// PredicateEndorsement is the predicate type of 'cairn attest' without --predicate: the
// signer vouches for the release files, and the predicate names the release.
const PredicateEndorsement = "https://cairn.dev/endorsement/v1"

// inTotoStatementV1 is the statement type sigstore-go, cosign and GitHub write.
const inTotoStatementV1 = "https://in-toto.io/Statement/v1"

// Statement returns an in-toto v1 statement of predicateType about files (each a subject
// named by its file name, with the sha256 of verified TUF metadata). predicate is the
// predicate's JSON, an object, kept byte for byte (compacted): numbers are not rounded
// through float64 as a protobuf Struct would.
func Statement(predicateType string, predicate []byte, files []api.File) ([]byte, error) {
	u, err := url.Parse(predicateType)
	if err != nil || !u.IsAbs() || len(predicateType) > 512 {
		return nil, api.Errorf(api.CodeBadRequest, "the predicate type %.100q is not an absolute URI of at most 512 characters (for example https://slsa.dev/provenance/v1)", predicateType)
	}
	if len(files) == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "an attestation needs at least one file to be about")
	}
	if len(files) > attest.MaxSubjects {
		return nil, api.Errorf(api.CodeTooMany, "the release has %d files; one statement names at most %d: choose files with --file", len(files), attest.MaxSubjects)
	}
	var pred bytes.Buffer
	if err := json.Compact(&pred, predicate); err != nil {
		return nil, api.Wrap(api.CodeBadRequest, err, "the predicate is not JSON: %v", err)
	}
	if b := bytes.TrimSpace(pred.Bytes()); len(b) == 0 || b[0] != '{' {
		return nil, api.Errorf(api.CodeBadRequest, "the predicate must be a JSON object ({...}), as in-toto requires")
	}
	type subject struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
	st := struct {
		Type          string          `json:"_type"`
		Subject       []subject       `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}{Type: inTotoStatementV1, PredicateType: predicateType, Predicate: pred.Bytes()}
	for _, f := range files {
		if err := ValidateSHA256Hex(f.SHA256); err != nil {
			return nil, err
		}
		st.Subject = append(st.Subject, subject{Name: f.Name, Digest: map[string]string{"sha256": f.SHA256}})
	}
	return json.Marshal(st)
}

// SigningServices are the Sigstore services a keyless signature goes through.
type SigningServices struct {
	FulcioURL string // certificate authority
	RekorURL  string // transparency log
	// RekorVersion is 1 (rekor) or 2 (rekor-tiles). A Rekor v2 entry has no integrated
	// time, so v2 needs TSAURL: the timestamp is the trusted time of signing.
	RekorVersion uint32
	TSAURL       string // RFC 3161 timestamp authority (its full …/api/v1/timestamp URL); optional for v1
	// Transport carries every request (nil: http.DefaultTransport).
	Transport http.RoundTripper
	Timeout   time.Duration // per request; 0: 30 s
}

// KeylessSigner signs in-toto statements with short-lived Fulcio certificates through
// sigstore-go's pkg/sign. The fields are sigstore-go's own interfaces, so tests put
// in-process fakes there (attest/attesttest).
type KeylessSigner struct {
	CA   sign.CertificateProvider
	Logs []sign.Transparency
	TSAs []*sign.TimestampAuthority
	// NewKeypair makes the signing key; nil: a fresh ephemeral ECDSA P-256 key, which
	// lives in memory for one signature and is never written anywhere.
	NewKeypair func() (sign.Keypair, error)
}

// NewKeylessSigner returns the signer for services.
func NewKeylessSigner(s SigningServices) (*KeylessSigner, error) {
	for _, u := range []struct{ name, v string }{{"Fulcio", s.FulcioURL}, {"Rekor", s.RekorURL}} {
		if err := checkServiceURL(u.name, u.v); err != nil {
			return nil, err
		}
	}
	if s.RekorVersion != 1 && s.RekorVersion != 2 {
		return nil, api.Errorf(api.CodeBadRequest, "Rekor API version %d is not known: use 1 (rekor) or 2 (rekor-tiles)", s.RekorVersion)
	}
	if s.RekorVersion == 2 && s.TSAURL == "" {
		return nil, api.Errorf(api.CodeBadRequest, "a Rekor v2 log records no time of its own: name a timestamp authority (--tsa-url) so the signature has a trusted time")
	}
	k := &KeylessSigner{
		CA:   sign.NewFulcio(&sign.FulcioOptions{BaseURL: s.FulcioURL, Timeout: s.Timeout, Retries: 1, Transport: s.Transport}),
		Logs: []sign.Transparency{sign.NewRekor(&sign.RekorOptions{BaseURL: s.RekorURL, Timeout: s.Timeout, Retries: 1, Version: s.RekorVersion})},
	}
	if s.TSAURL != "" {
		if err := checkServiceURL("timestamp authority", s.TSAURL); err != nil {
			return nil, err
		}
		k.TSAs = []*sign.TimestampAuthority{sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: s.TSAURL, Timeout: s.Timeout, Retries: 1, Transport: s.Transport})}
	}
	return k, nil
}

// checkServiceURL allows https, and plain http to loopback only (tests, a local stack):
// the identity token travels to Fulcio.
func checkServiceURL(name, raw string) error {
	if raw == "" {
		return api.Errorf(api.CodeBadRequest, "no %s URL is set", name)
	}
	if _, err := CheckFetchURL(raw); err != nil {
		return api.Wrap(api.CodeBadRequest, err, "the %s URL: %v", name, err)
	}
	return nil
}

// SignStatement signs statement (an in-toto statement, JSON) as a DSSE envelope: a fresh
// key, a Fulcio certificate for the identity of idToken, the transparency log entry with
// its inclusion proof, and timestamps if there are timestamp authorities. sigstore-go
// verifies the bundle against tr before it is returned; the result is the v0.3 bundle's
// JSON. idToken is sent to the certificate authority only, and never logged.
func (k *KeylessSigner) SignStatement(ctx context.Context, idToken string, statement []byte, tr root.TrustedMaterial) ([]byte, error) {
	if idToken == "" {
		return nil, api.Errorf(api.CodeBadRequest, "keyless signing needs an OIDC identity token")
	}
	newKP := k.NewKeypair
	if newKP == nil {
		newKP = func() (sign.Keypair, error) { return sign.NewEphemeralKeypair(nil) }
	}
	kp, err := newKP()
	if err != nil {
		return nil, fmt.Errorf("making the ephemeral signing key: %w", err)
	}
	pb, err := sign.Bundle(&sign.DSSEData{Data: statement, PayloadType: "application/vnd.in-toto+json"}, kp, sign.BundleOptions{
		CertificateProvider:        k.CA,
		CertificateProviderOptions: &sign.CertificateProviderOptions{IDToken: idToken},
		TimestampAuthorities:       k.TSAs,
		TransparencyLogs:           k.Logs,
		Context:                    ctx,
		TrustedRoot:                tr,
	})
	if err != nil {
		return nil, fmt.Errorf("keyless signing (Fulcio certificate, transparency log entry, verification against the repository's trusted root); nothing was uploaded: %w", err)
	}
	raw, err := protojson.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("encoding the bundle: %w", err)
	}
	return raw, nil
}

// KeySigner signs in-toto statements with a maintainer key (cairn attest --key) through
// sigstore-go's pkg/sign: no certificate, the key named by its TUF key ID in the bundle's
// public-key hint, the same transparency log entry (and timestamps) as a keyless
// signature, so the server's inclusion-proof requirement holds for both. Logs and TSAs are
// sigstore-go's own types, so tests put in-process fakes there (attest/attesttest).
type KeySigner struct {
	Logs []sign.Transparency
	TSAs []*sign.TimestampAuthority
}

// NewKeySigner returns the signer for services (FulcioURL is not used).
func NewKeySigner(s SigningServices) (*KeySigner, error) {
	if err := checkServiceURL("Rekor", s.RekorURL); err != nil {
		return nil, err
	}
	if s.RekorVersion != 1 && s.RekorVersion != 2 {
		return nil, api.Errorf(api.CodeBadRequest, "Rekor API version %d is not known: use 1 (rekor) or 2 (rekor-tiles)", s.RekorVersion)
	}
	if s.RekorVersion == 2 && s.TSAURL == "" {
		return nil, api.Errorf(api.CodeBadRequest, "a Rekor v2 log records no time of its own: name a timestamp authority (--tsa-url) so the signature has a trusted time")
	}
	k := &KeySigner{Logs: []sign.Transparency{sign.NewRekor(&sign.RekorOptions{BaseURL: s.RekorURL, Timeout: s.Timeout, Retries: 1, Version: s.RekorVersion})}}
	if s.TSAURL != "" {
		if err := checkServiceURL("timestamp authority", s.TSAURL); err != nil {
			return nil, err
		}
		k.TSAs = []*sign.TimestampAuthority{sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: s.TSAURL, Timeout: s.Timeout, Retries: 1, Transport: s.Transport})}
	}
	return k, nil
}

// SignStatement signs statement as a DSSE envelope with kp (attest.NewKeypair over a
// maintainer key), logs it, and timestamps it if there are timestamp authorities. The
// bundle is not verified here: AttachAttestation verifies it, against the trusted root and
// the project's verified delegation, before anything is posted.
func (k *KeySigner) SignStatement(ctx context.Context, kp *attest.Keypair, statement []byte) ([]byte, error) {
	pb, err := sign.Bundle(&sign.DSSEData{Data: statement, PayloadType: "application/vnd.in-toto+json"}, kp, sign.BundleOptions{
		TimestampAuthorities: k.TSAs,
		TransparencyLogs:     k.Logs,
		Context:              ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("signing with the maintainer key (transparency log entry, timestamps); nothing was uploaded: %w", err)
	}
	raw, err := protojson.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("encoding the bundle: %w", err)
	}
	return raw, nil
}

// AttestResult is what 'cairn attest' did for one file.
type AttestResult struct {
	File        api.File         `json:"file"`
	Attestation *api.Attestation `json:"attestation,omitempty"`
	Existing    bool             `json:"already_attached,omitempty"`
}

// AttachAttestation verifies bundle, offline, against tr (and, for a key-based bundle,
// keys: the project's maintainer keys from its verified delegation) for every file, and
// only then posts it to each: a bundle the server would refuse is refused here with
// nothing sent. A bundle the server already has for a file is not an error (Existing).
func AttachAttestation(ctx context.Context, a *API, tr *attest.TrustedRoot, keys attest.MaintainerKeys, bundle []byte, files []api.File) ([]AttestResult, error) {
	for _, f := range files {
		if _, err := attest.VerifyWithKeys(tr, bundle, f.SHA256, keys); err != nil {
			return nil, fmt.Errorf("the signed bundle does not verify for %s against the repository's trusted root; nothing was uploaded: %w", f.Name, err)
		}
	}
	var out []AttestResult
	for i, f := range files {
		at, err := a.PostAttestation(ctx, f.SHA256, bundle)
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == api.CodeAttestationExists:
			out = append(out, AttestResult{File: f, Existing: true})
		case err != nil:
			done := slices.Collect(func(yield func(string) bool) {
				for _, r := range out {
					if !yield(r.File.Name) {
						return
					}
				}
			})
			return out, fmt.Errorf("attaching the attestation to %s (file %d of %d; attached to %v before it): %w", f.Name, i+1, len(files), done, err)
		default:
			out = append(out, AttestResult{File: f, Attestation: &at})
		}
	}
	return out, nil
}
