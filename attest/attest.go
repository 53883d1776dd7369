// Package attest verifies Sigstore bundles (protobuf-specs v0.3 JSON) about release files
// with sigstore-go, against a repository's Sigstore trusted root. The server runs it before
// it stores a bundle, and the client runs it again, offline, on every bundle it is shown:
// both sides read a bundle in exactly the same way. It does no HTTP and no SQL.
package attest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"
)

// MediaTypeBundle03 is the one bundle media type Cairn accepts: v0.3 carries a single
// leaf certificate and requires an inclusion proof, so a bundle verifies offline.
const MediaTypeBundle03 = "application/vnd.dev.sigstore.bundle.v0.3+json"

// mediaTypeBundle03Alt is the same version spelled as a parameter; sigstore-go reads both.
const mediaTypeBundle03Alt = "application/vnd.dev.sigstore.bundle+json;version=0.3"

// MaxBundleBytes bounds one bundle. A keyless bundle with an SLSA provenance is 5–15 KB; an
// SBOM statement can be much larger. Larger bundles are refused (too_large).
const MaxBundleBytes = 1 << 20

// MaxTrustedRootBytes bounds the trusted root a server is configured with, and the one a
// client accepts through TUF.
const MaxTrustedRootBytes = 1 << 20

// MaxSubjects bounds the subjects of one in-toto statement Cairn reads.
const MaxSubjects = 1024

// bundleFields are the JSON names of the protobuf-specs bundle and trusted root messages: a
// key that differs from one only in case is refused (protojson matches exactly, Go would
// not), so every reader sees the same fields. keyId (log IDs) and keyid (DSSE) are both
// spelled by the specs, so neither is listed; two keys of one object that fold together
// are refused anyway.
var bundleFields = strictjson.FieldNames(
	"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature", "certificate",
	"rawBytes", "tlogEntries", "logIndex", "logId", "kindVersion", "kind", "version",
	"integratedTime", "inclusionPromise", "signedEntryTimestamp", "inclusionProof", "rootHash",
	"treeSize", "hashes", "checkpoint", "envelope", "canonicalizedBody",
	"timestampVerificationData", "rfc3161Timestamps", "signedTimestamp", "payload",
	"payloadType", "signatures", "sig", "publicKey", "hint", "x509CertificateChain",
	"certificates", "messageDigest", "algorithm", "digest", "signature",
	"tlogs", "certificateAuthorities", "ctlogs", "timestampAuthorities", "baseUrl",
	"hashAlgorithm", "keyDetails", "validFor", "start", "end", "subject", "organization",
	"commonName", "uri", "certChain", "checkpointKeyId", "operator",
)

// TrustedRoot is a parsed Sigstore trusted root with its exact bytes.
type TrustedRoot struct {
	Raw    []byte
	SHA256 string
	root   *root.TrustedRoot
}

// ParseTrustedRoot reads a trusted_root.json (media type
// application/vnd.dev.sigstore.trustedroot+json;version=0.1), strictly: one reading only.
func ParseTrustedRoot(raw []byte) (*TrustedRoot, error) {
	if len(raw) > MaxTrustedRootBytes {
		return nil, fmt.Errorf("the Sigstore trusted root is %d bytes; at most %d are allowed", len(raw), MaxTrustedRootBytes)
	}
	if err := strictjson.Check(raw, bundleFields); err != nil {
		return nil, fmt.Errorf("reading the Sigstore trusted root: %w", err)
	}
	tr, err := root.NewTrustedRootFromJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("reading the Sigstore trusted root: %w", err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return nil, errors.New("the Sigstore trusted root names no certificate authority (Fulcio): no keyless bundle could verify")
	}
	if len(tr.RekorLogs()) == 0 {
		return nil, errors.New("the Sigstore trusted root names no transparency log (Rekor): no bundle could verify")
	}
	sum := sha256.Sum256(raw)
	return &TrustedRoot{Raw: raw, SHA256: hex.EncodeToString(sum[:]), root: tr}, nil
}

// Material is the trusted material sigstore-go verifies against.
func (t *TrustedRoot) Material() root.TrustedMaterial { return t.root }

// Verified is what a verified bundle says: who signed, about what, and when the log saw it.
type Verified struct {
	api.Attestation
	// Bundle is the exact bytes verified.
	Bundle []byte
	// SignatureSHA256 is the sha256 of the DSSE signature: two bundles that carry the same
	// signature are one attestation, however they are serialised.
	SignatureSHA256 string
}

// statement is the part of an in-toto statement Cairn reads before verification, to give a
// specific error; sigstore-go reads it again after the signature verified.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

// Verify checks a bundle about the file whose sha256 is fileSHA256 (lowercase hex) and
// returns what it attests. The checks run in an order that names the first thing wrong:
//
//   - too_large: more than MaxBundleBytes;
//   - bundle_malformed (or ambiguous_json): not a bundle, or not readable one way only;
//   - bundle_media_type: not a v0.3 bundle;
//   - bundle_malformed: content is not a DSSE envelope with an in-toto statement;
//   - attestation_subject_mismatch: no subject of the statement has that sha256;
//   - attestation_not_included: a log entry has no inclusion proof, or the proof, its
//     checkpoint or its signed entry timestamp does not verify against the trusted root;
//   - attestation_key_unknown: a public-key bundle (VerifyWithKeys) whose hint names no
//     key of keys;
//   - attestation_invalid: anything else sigstore-go refuses (certificate chain, time of
//     signing within the certificate's validity, signature, artifact digest).
//
// Verify takes keyless (Fulcio certificate) bundles only; VerifyWithKeys also takes
// bundles signed with a project's maintainer key.
func Verify(tr *TrustedRoot, raw []byte, fileSHA256 string) (*Verified, error) {
	return VerifyWithKeys(tr, raw, fileSHA256, nil)
}

// VerifyWithKeys is Verify that also accepts a public-key bundle signed with one of keys:
// the maintainer keys that TUF delegates for the project (or projects) whose releases
// contain the file, by TUF key ID. The bundle names its key by that ID (its public-key
// hint); the identity recorded is MaintainerIdentity, which no certificate can carry.
func VerifyWithKeys(tr *TrustedRoot, raw []byte, fileSHA256 string, keys MaintainerKeys) (*Verified, error) {
	return verifyWith(tr, raw, fileSHA256, func(hint string) (*MaintainerKey, error) {
		k, ok := keys[hint]
		if !ok {
			return nil, api.Errorf(api.CodeAttestationKeyUnknown, "the bundle is signed with a key (hint %.80q) that is not a current maintainer key of a project that published sha256:%s: a public-key attestation must be signed with a maintainer key the project's TUF delegation lists, named by its TUF key ID (cairn attest --key)", hint, fileSHA256)
		}
		return &k, nil
	})
}

// VerifyWithLocalKey is Verify that also accepts a public-key bundle signed with pub, a
// key the user gave on this machine (cairn get oci:// --key, as cosign verify --key),
// whatever the bundle's key hint says: the signature decides. The identity recorded is
// LocalKeyIdentity, which no certificate and no maintainer key can carry.
func VerifyWithLocalKey(tr *TrustedRoot, raw []byte, fileSHA256 string, pub crypto.PublicKey) (*Verified, error) {
	fp, err := KeyFingerprint(pub)
	if err != nil {
		return nil, api.Wrap(api.CodeInvalidKey, err, "the key given cannot verify attestations: %v", err)
	}
	id := LocalKeyIdentity(fp)
	return verifyWith(tr, raw, fileSHA256, func(string) (*MaintainerKey, error) {
		return &MaintainerKey{KeyID: fp, Public: pub, identity: &id}, nil
	})
}

// verifyWith is the verification of every bundle; lookup gives the key a public-key
// bundle's hint names (or refuses it).
func verifyWith(tr *TrustedRoot, raw []byte, fileSHA256 string, lookup func(hint string) (*MaintainerKey, error)) (*Verified, error) {
	if len(raw) > MaxBundleBytes {
		return nil, api.Errorf(api.CodeTooLarge, "the bundle is %d bytes; at most %d are allowed", len(raw), MaxBundleBytes)
	}
	want, err := hex.DecodeString(fileSHA256)
	if err != nil || len(want) != sha256.Size || strings.ToLower(fileSHA256) != fileSHA256 {
		return nil, api.Errorf(api.CodeBadRequest, "%.80q is not a sha256 digest: use 64 lowercase hex digits", fileSHA256)
	}
	if err := strictjson.Check(raw, bundleFields); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) && se.Syntax {
			return nil, api.Wrap(api.CodeBundleMalformed, err, "the bundle is not valid JSON: %s at %s (byte %d)", se.Reason, se.Path, se.Offset)
		}
		return nil, api.Wrap(api.CodeAmbiguousJSON, err, "the bundle is refused because JSON parsers could read it differently: %v", err)
	}
	var pb protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(raw, &pb); err != nil {
		return nil, api.Wrap(api.CodeBundleMalformed, err, "the body is not a Sigstore bundle (protobuf-specs JSON): %v", err)
	}
	if pb.MediaType != MediaTypeBundle03 && pb.MediaType != mediaTypeBundle03Alt {
		return nil, api.Errorf(api.CodeBundleMediaType, "bundle media type %.100q is not accepted: Cairn takes %s (cosign sign-blob --new-bundle-format, sigstore-go, gh attestation download)", pb.MediaType, MediaTypeBundle03)
	}
	env := pb.GetDsseEnvelope()
	if env == nil {
		return nil, api.Errorf(api.CodeBundleMalformed, "the bundle carries a message signature, not an attestation: sign an in-toto statement (DSSE envelope) about the file")
	}
	if env.PayloadType != "application/vnd.in-toto+json" {
		return nil, api.Errorf(api.CodeBundleMalformed, "the DSSE payload type is %.80q; an attestation is application/vnd.in-toto+json", env.PayloadType)
	}
	if len(env.Signatures) != 1 {
		return nil, api.Errorf(api.CodeBundleMalformed, "the DSSE envelope has %d signatures; a Sigstore bundle has exactly one", len(env.Signatures))
	}
	st, err := readStatement(env.Payload)
	if err != nil {
		return nil, err
	}
	if !hasSubject(st, fileSHA256) {
		return nil, api.Errorf(api.CodeAttestationSubject, "the statement's subjects (%s) do not include sha256:%s: this bundle attests another file", subjectList(st), fileSHA256)
	}
	for i, e := range pb.GetVerificationMaterial().GetTlogEntries() {
		if e.GetInclusionProof() == nil {
			return nil, api.Errorf(api.CodeAttestationNotIncluded, "transparency log entry %d (log index %d) has no inclusion proof: a v0.3 bundle must prove the entry is in the log", i, e.GetLogIndex())
		}
	}
	if len(pb.GetVerificationMaterial().GetTlogEntries()) == 0 {
		return nil, api.Errorf(api.CodeAttestationNotIncluded, "the bundle has no transparency log entry: upload the signature to Rekor and attach its inclusion proof")
	}
	if pk := pb.GetVerificationMaterial().GetPublicKey(); pk != nil {
		k, err := lookup(pk.GetHint())
		if err != nil {
			return nil, err
		}
		return verifyParsed(tr, raw, &pb, env, st, want, fileSHA256, k)
	}
	if pb.GetVerificationMaterial().GetCertificate() == nil {
		return nil, api.Errorf(api.CodeAttestationInvalid, "the bundle carries neither a Fulcio certificate nor a public-key hint: Cairn accepts keyless (certificate-bound) bundles and bundles signed with a project's maintainer key")
	}
	leaf, err := x509.ParseCertificate(pb.GetVerificationMaterial().GetCertificate().GetRawBytes())
	if err != nil {
		return nil, api.Wrap(api.CodeBundleMalformed, err, "the bundle's certificate cannot be read: %v", err)
	}
	// A log entry made outside the certificate's lifetime (ten minutes for Fulcio) proves
	// nothing about when the key signed; sigstore-go refuses it inside its log check, so it
	// is named here first.
	for _, e := range pb.GetVerificationMaterial().GetTlogEntries() {
		if e.GetIntegratedTime() == 0 {
			continue
		}
		at := time.Unix(e.GetIntegratedTime(), 0).UTC()
		if at.Before(leaf.NotBefore) || at.After(leaf.NotAfter) {
			return nil, api.Errorf(api.CodeAttestationInvalid, "the certificate (valid %s to %s) was not valid when the log recorded the signature at %s: a keyless signature must be logged while its certificate is valid", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), at.Format(time.RFC3339))
		}
	}
	return verifyParsed(tr, raw, &pb, env, st, want, fileSHA256, nil)
}

// verifyParsed runs sigstore-go's verifier over a bundle whose structure was checked:
// against the trusted root's Fulcio CA for a certificate (signer nil), or against the
// maintainer key signer for a public-key bundle, with the trusted root's logs and
// timestamp authorities either way.
func verifyParsed(tr *TrustedRoot, raw []byte, pb *protobundle.Bundle, env *protodsse.Envelope, st *statement, want []byte, fileSHA256 string, signer *MaintainerKey) (*Verified, error) {
	b, err := bundle.NewBundle(pb)
	if err != nil {
		if errors.Is(err, bundle.ErrUnsupportedMediaType) {
			return nil, api.Wrap(api.CodeBundleMediaType, err, "bundle media type: %v", err)
		}
		return nil, api.Wrap(api.CodeBundleMalformed, err, "the bundle is not valid: %v", err)
	}
	var material root.TrustedMaterial = tr.root
	identityPolicy := verify.WithoutIdentitiesUnsafe()
	if signer != nil {
		// The key is the one named by the bundle's hint; sigstore-go checks the envelope
		// and the log entry against it. The trusted root still supplies the logs and the
		// timestamp authorities, so the log inclusion and the time are checked as for a
		// keyless bundle.
		kv, err := signer.verifier()
		if err != nil {
			return nil, api.Wrap(api.CodeAttestationKeyUnknown, err, "maintainer key %s of %s cannot verify attestations: %v", signer.KeyID, signer.Project, err)
		}
		hint := pb.GetVerificationMaterial().GetPublicKey().GetHint()
		keyMaterial := root.NewTrustedPublicKeyMaterial(func(id string) (root.TimeConstrainedVerifier, error) {
			if id != hint {
				return nil, fmt.Errorf("key %.80q is not the bundle's key", id)
			}
			return root.NewExpiringKey(kv, time.Time{}, time.Time{}), nil
		})
		material = root.TrustedMaterialCollection{tr.root, keyMaterial}
		identityPolicy = verify.WithKey()
	}
	v, err := verify.NewVerifier(material, verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1))
	if err != nil {
		return nil, fmt.Errorf("building the bundle verifier: %w", err)
	}
	res, err := v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", want), identityPolicy))
	if err != nil {
		// The log check alone tells a log entry that is not proven (wrong log, proof or
		// checkpoint) from the rest; it runs only on failure, since Verify repeats it and
		// it is half the cost of a verification.
		if _, terr := verify.VerifyTlogEntry(b, material, 1, false); terr != nil {
			return nil, api.Wrap(api.CodeAttestationNotIncluded, terr, "the transparency log entry does not verify against the repository's trusted root: %v", terr)
		}
		return nil, api.Wrap(api.CodeAttestationInvalid, err, "the bundle does not verify against the repository's trusted root: %v", err)
	}
	logTime, ok := earliest(res.VerifiedTimestamps)
	if !ok {
		return nil, api.Errorf(api.CodeAttestationInvalid, "the bundle verified without a trusted time")
	}
	bsum := sha256.Sum256(raw)
	ssum := sha256.Sum256(env.Signatures[0].Sig)
	out := &Verified{Bundle: raw, SignatureSHA256: hex.EncodeToString(ssum[:])}
	out.Attestation = api.Attestation{
		FileSHA256:    fileSHA256,
		BundleSHA256:  hex.EncodeToString(bsum[:]),
		PredicateType: st.PredicateType,
		LogTime:       logTime.UTC(),
		LogIndex:      pb.GetVerificationMaterial().GetTlogEntries()[0].GetLogIndex(),
	}
	if signer != nil {
		out.Identity = MaintainerIdentity(signer.Project, signer.KeyID)
		if signer.identity != nil {
			out.Identity = *signer.identity
		}
		return out, nil
	}
	if res.Signature == nil || res.Signature.Certificate == nil {
		return nil, api.Errorf(api.CodeAttestationInvalid, "the bundle verified without a certificate identity")
	}
	cert := res.Signature.Certificate
	out.Identity = api.SignerIdentity{SAN: cert.SubjectAlternativeName, Issuer: cert.Extensions.Issuer}
	// The maintainer-key names belong to key-based bundles: a certificate that carried one
	// (a private Fulcio's URI SAN) could pass for a project's maintainers in a policy.
	if IsMaintainerIdentity(out.Identity) || out.Identity.Issuer == LocalKeyIssuer {
		return nil, api.Errorf(api.CodeAttestationInvalid, "the certificate's identity %s uses the names Cairn reserves for maintainer-key attestations (%s…, %s…)", out.Identity, KeySANPrefix, MaintainerIssuerPrefix)
	}
	out.SourceRepository = cert.Extensions.SourceRepositoryURI
	out.BuildSigner = cert.Extensions.BuildSignerURI
	return out, nil
}

// CheckStatement reads an in-toto statement exactly as Verify reads a bundle's payload,
// so a signer can refuse, before it signs and logs anything, a statement the server would
// refuse (ambiguous JSON, a number with a fraction, too many subjects, no predicate type).
func CheckStatement(payload []byte) error {
	_, err := readStatement(payload)
	return err
}

// readStatement reads the DSSE payload as an in-toto statement, strictly.
func readStatement(payload []byte) (*statement, error) {
	if err := strictjson.Check(payload, strictjson.FieldsOf(statement{})); err != nil {
		return nil, api.Wrap(api.CodeBundleMalformed, err, "the in-toto statement in the bundle cannot be read one way only: %v", err)
	}
	var st statement
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&st); err != nil {
		return nil, api.Wrap(api.CodeBundleMalformed, err, "the DSSE payload is not an in-toto statement: %v", err)
	}
	switch {
	case st.Type != "https://in-toto.io/Statement/v1" && st.Type != "https://in-toto.io/Statement/v0.1":
		return nil, api.Errorf(api.CodeBundleMalformed, "the DSSE payload has _type %.80q, not an in-toto statement (https://in-toto.io/Statement/v1)", st.Type)
	case st.PredicateType == "":
		return nil, api.Errorf(api.CodeBundleMalformed, "the in-toto statement has no predicateType")
	case len(st.PredicateType) > 512:
		return nil, api.Errorf(api.CodeBundleMalformed, "the predicate type is %d characters; at most 512 are allowed", len(st.PredicateType))
	case len(st.Subject) == 0:
		return nil, api.Errorf(api.CodeBundleMalformed, "the in-toto statement has no subject")
	case len(st.Subject) > MaxSubjects:
		return nil, api.Errorf(api.CodeTooMany, "the in-toto statement has %d subjects; at most %d are read", len(st.Subject), MaxSubjects)
	}
	return &st, nil
}

func hasSubject(st *statement, sum string) bool {
	for _, s := range st.Subject {
		if s.Digest["sha256"] == sum {
			return true
		}
	}
	return false
}

func subjectList(st *statement) string {
	var parts []string
	for i, s := range st.Subject {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(st.Subject)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%.60q sha256:%.64s", s.Name, s.Digest["sha256"]))
	}
	return strings.Join(parts, ", ")
}

func earliest(ts []verify.TimestampVerificationResult) (time.Time, bool) {
	var t time.Time
	for _, v := range ts {
		if t.IsZero() || v.Timestamp.Before(t) {
			t = v.Timestamp
		}
	}
	return t, !t.IsZero()
}
