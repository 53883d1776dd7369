//go:generate go run ../internal/tools/errtable -w

// Package api holds the wire types and error codes shared by the Cairn server and its
// clients. It has no I/O and depends on nothing else in Cairn.
package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error code. Clients switch on it; never change the
// meaning of an existing code.
type Code string

// The wire error codes. Every one is in the registry below (registry()), which gives its
// HTTP status, title, CLI exit class and OCI answer.
const (
	CodeBadRequest             Code = "bad_request"
	CodeMalformedJSON          Code = "malformed_json"
	CodeMalformedMetadata      Code = "malformed_metadata"
	CodeAmbiguousJSON          Code = "ambiguous_json"
	CodeInvalidName            Code = "invalid_name"
	CodeInvalidPath            Code = "invalid_path"
	CodeInvalidKey             Code = "invalid_key"
	CodeInvalidThreshold       Code = "invalid_threshold"
	CodeUnauthorized           Code = "unauthorized"
	CodeForbidden              Code = "forbidden"
	CodeNotFound               Code = "not_found"
	CodeMethodNotAllowed       Code = "method_not_allowed"
	CodeProjectExists          Code = "project_exists"
	CodeTooLarge               Code = "too_large"
	CodeTooSlow                Code = "too_slow"
	CodeDigestMismatch         Code = "digest_mismatch"
	CodeBlobMissing            Code = "blob_missing"
	CodeLengthMismatch         Code = "length_mismatch"
	CodeHashMismatch           Code = "hash_mismatch"
	CodeVersionConflict        Code = "version_conflict"
	CodeExpired                Code = "expired"
	CodeExpiryTooFar           Code = "expiry_too_far"
	CodePathOutsideProject     Code = "path_outside_project"
	CodeImmutablePath          Code = "immutable_path"
	CodeOCITagCollision        Code = "oci_tag_collision"
	CodeSignatureInvalid       Code = "signature_invalid"
	CodeKeyNotDelegated        Code = "key_not_delegated"
	CodeThresholdNotMet        Code = "threshold_not_met"
	CodeDelegationForbidden    Code = "delegation_forbidden"
	CodeProposalExists         Code = "proposal_exists"
	CodeProposalStale          Code = "proposal_stale"
	CodeProposalExpired        Code = "proposal_expired"
	CodeSignatureRepeated      Code = "signature_repeated"
	CodeTooMany                Code = "too_many"
	CodeUnsupported            Code = "unsupported"
	CodeNotBootstrapped        Code = "not_bootstrapped"
	CodeAlreadyBootstrapped    Code = "already_bootstrapped"
	CodeUnavailable            Code = "unavailable"
	CodeNotLogged              Code = "not_logged"
	CodePruned                 Code = "pruned"
	CodeNoMerkleTree           Code = "no_merkle_tree"
	CodeRoleNotInTree          Code = "role_not_in_tree"
	CodeReadOnlyMirror         Code = "read_only_mirror"
	CodeBundleMalformed        Code = "bundle_malformed"
	CodeBundleMediaType        Code = "bundle_media_type"
	CodeAttestationSubject     Code = "attestation_subject_mismatch"
	CodeAttestationNotIncluded Code = "attestation_not_included"
	CodeAttestationInvalid     Code = "attestation_invalid"
	CodeAttestationExists      Code = "attestation_exists"
	CodeAttestationsOff        Code = "attestations_off"
	CodeInternal               Code = "internal"
	// CodeAttestationKeyUnknown: a public-key bundle whose key is not a current maintainer
	// key of a project that published the file.
	CodeAttestationKeyUnknown Code = "attestation_key_unknown"

	// Codes that only the OCI registry (/v2/) answers, in the distribution spec's error
	// format, never in a REST problem document. The registry names the spec code each one
	// is answered with; where the spec code alone does not fix the HTTP status (a manifest
	// or blob over the size limit is 413, not 400), the entries differ.
	CodeOCIBlobUnknown         Code = "oci_blob_unknown"
	CodeOCIUploadUnknown       Code = "oci_upload_unknown"
	CodeOCIDigestInvalid       Code = "oci_digest_invalid"
	CodeOCIManifestBlobUnknown Code = "oci_manifest_blob_unknown"
	CodeOCIManifestInvalid     Code = "oci_manifest_invalid"
	CodeOCIManifestTooLarge    Code = "oci_manifest_too_large"
	CodeOCIManifestUnknown     Code = "oci_manifest_unknown"
	CodeOCINameInvalid         Code = "oci_name_invalid"
	CodeOCINameUnknown         Code = "oci_name_unknown"
	CodeOCISizeInvalid         Code = "oci_size_invalid"
	CodeOCIBlobTooLarge        Code = "oci_blob_too_large"
	CodeOCIRangeInvalid        Code = "oci_range_invalid"
	CodeOCIUnsupported         Code = "oci_unsupported"
	CodeOCIReleaseImmutable    Code = "oci_release_immutable"
	CodeOCIBlobReferenced      Code = "oci_blob_referenced"
)

// CodeInfo is one entry of the error registry: everything about a code that REST, the OCI
// registry and the CLI need, so that none of them keeps a table of its own.
type CodeInfo struct {
	Code Code
	// Status is the HTTP status of every answer with this code, REST or OCI.
	Status int
	// Title is a short description: a REST problem document's title, and the tables in
	// api/openapi.yaml and README.md.
	Title string
	// Exit is the cairn CLI's exit status when the server refuses with this code
	// (client.Classify).
	Exit ExitClass
	// OCI is the error code of the distribution spec's format that the OCI registry
	// (/v2/) answers for this entry, or "" if /v2/ never answers it (an error with such a
	// code reaching /v2/ is answered as internal).
	OCI string
	// OCIOnly marks an entry that only /v2/ answers; it is not a REST problem code and is
	// not in openapi.yaml's Problem.code enum.
	OCIOnly bool
}

// registry is the one table of error codes, in the order the generated tables list them.
// It is built on each call, so nothing outside can change it.
func registry() []CodeInfo {
	type row struct {
		code   Code
		status int
		title  string
		exit   ExitClass
		oci    string
	}
	rest := []row{
		{CodeBadRequest, http.StatusBadRequest, "The request is not valid", ExitMalformed, ""},
		{CodeMalformedJSON, http.StatusBadRequest, "The request body is not valid JSON of the expected shape", ExitMalformed, ""},
		{CodeMalformedMetadata, http.StatusBadRequest, "The TUF metadata could not be parsed", ExitMalformed, ""},
		{CodeAmbiguousJSON, http.StatusBadRequest, "The JSON document could be read differently by different parsers", ExitMalformed, ""},
		{CodeInvalidName, http.StatusBadRequest, "The project name is not valid", ExitMalformed, ""},
		{CodeInvalidPath, http.StatusUnprocessableEntity, "A target path is not well formed", ExitMalformed, ""},
		{CodeInvalidKey, http.StatusBadRequest, "A public key is not valid or not supported", ExitMalformed, ""},
		{CodeInvalidThreshold, http.StatusBadRequest, "The threshold is not valid for the keys given", ExitMalformed, ""},
		{CodeUnauthorized, http.StatusUnauthorized, "A valid bearer token is required", ExitFailure, "UNAUTHORIZED"},
		{CodeForbidden, http.StatusForbidden, "The token may not do this", ExitPolicy, "DENIED"},
		{CodeNotFound, http.StatusNotFound, "Not found", ExitFailure, ""},
		{CodeMethodNotAllowed, http.StatusMethodNotAllowed, "The method is not allowed on this path", ExitMalformed, "UNSUPPORTED"},
		{CodeProjectExists, http.StatusConflict, "The project already exists", ExitPolicy, ""},
		{CodeTooLarge, http.StatusRequestEntityTooLarge, "The request is larger than allowed", ExitPolicy, ""},
		{CodeTooSlow, http.StatusRequestTimeout, "The request body arrived too slowly", ExitFailure, "REQUEST_TIMEOUT"},
		{CodeDigestMismatch, http.StatusBadRequest, "The uploaded bytes do not match the digest", ExitHashMismatch, "DIGEST_INVALID"},
		{CodeBlobMissing, http.StatusUnprocessableEntity, "A target refers to a blob that was not uploaded", ExitPolicy, ""},
		{CodeLengthMismatch, http.StatusUnprocessableEntity, "A target's length does not match its blob", ExitHashMismatch, ""},
		{CodeHashMismatch, http.StatusUnprocessableEntity, "A target's hashes are not acceptable", ExitHashMismatch, ""},
		{CodeVersionConflict, http.StatusConflict, "The metadata version is not the next version", ExitPolicy, ""},
		{CodeExpired, http.StatusUnprocessableEntity, "The metadata has expired or expires too soon", ExitPolicy, ""},
		{CodeExpiryTooFar, http.StatusUnprocessableEntity, "The metadata expires later than allowed", ExitPolicy, ""},
		{CodePathOutsideProject, http.StatusUnprocessableEntity, "A target path is outside the project", ExitPolicy, ""},
		{CodeImmutablePath, http.StatusConflict, "A published target may not be changed or removed", ExitPolicy, ""},
		{CodeOCITagCollision, http.StatusConflict, "Another release of the project has the same OCI tag", ExitPolicy, ""},
		{CodeSignatureInvalid, http.StatusUnprocessableEntity, "A signature does not verify", ExitSignatureInvalid, ""},
		{CodeKeyNotDelegated, http.StatusForbidden, "The metadata is signed by a key the project does not delegate to", ExitKeyNotTrusted, ""},
		{CodeThresholdNotMet, http.StatusUnprocessableEntity, "Not enough maintainer signatures", ExitSignatureInvalid, ""},
		{CodeDelegationForbidden, http.StatusUnprocessableEntity, "Project roles may not delegate", ExitPolicy, ""},
		{CodeProposalExists, http.StatusConflict, "A proposal for this project version is already open", ExitPolicy, ""},
		{CodeProposalStale, http.StatusConflict, "The proposal no longer applies: another version was published first", ExitPolicy, ""},
		{CodeProposalExpired, http.StatusGone, "The proposal has expired", ExitPolicy, ""},
		{CodeSignatureRepeated, http.StatusConflict, "This key has already signed the proposal", ExitPolicy, ""},
		{CodeTooMany, http.StatusUnprocessableEntity, "Too many items", ExitPolicy, ""},
		{CodeUnsupported, http.StatusUnsupportedMediaType, "Unsupported content type or algorithm", ExitMalformed, ""},
		{CodeNotBootstrapped, http.StatusServiceUnavailable, "The repository has not been bootstrapped", ExitFailure, ""},
		{CodeAlreadyBootstrapped, http.StatusConflict, "The repository is already bootstrapped", ExitFailure, ""},
		{CodeUnavailable, http.StatusServiceUnavailable, "The service is temporarily unavailable", ExitFailure, "UNAVAILABLE"},
		{CodeNotLogged, http.StatusNotFound, "The metadata version has no transparency log entry yet", ExitPolicy, ""},
		{CodePruned, http.StatusGone, "The metadata version is no longer kept", ExitFailure, ""},
		{CodeNoMerkleTree, http.StatusNotFound, "The timestamp version carries no Merkle snapshot", ExitFailure, ""},
		{CodeRoleNotInTree, http.StatusNotFound, "The Merkle snapshot of the timestamp has no leaf for the role", ExitPolicy, ""},
		{CodeReadOnlyMirror, http.StatusMethodNotAllowed, "This server is a read-only mirror", ExitPolicy, "DENIED"},
		{CodeBundleMalformed, http.StatusBadRequest, "The body is not a readable Sigstore bundle with an in-toto statement", ExitMalformed, ""},
		{CodeBundleMediaType, http.StatusUnsupportedMediaType, "The Sigstore bundle's media type is not v0.3", ExitMalformed, ""},
		{CodeAttestationSubject, http.StatusUnprocessableEntity, "The attestation is about another file", ExitHashMismatch, ""},
		{CodeAttestationNotIncluded, http.StatusUnprocessableEntity, "The bundle's transparency log entry is not proven to be in the log", ExitSignatureInvalid, ""},
		{CodeAttestationInvalid, http.StatusUnprocessableEntity, "The bundle does not verify against the repository's Sigstore trusted root", ExitSignatureInvalid, ""},
		{CodeAttestationExists, http.StatusConflict, "This attestation is already stored", ExitPolicy, ""},
		{CodeAttestationKeyUnknown, http.StatusUnprocessableEntity, "The bundle is signed by a key that is not a maintainer key of a project that published the file", ExitKeyNotTrusted, ""},
		{CodeAttestationsOff, http.StatusNotFound, "The repository has no Sigstore trusted root: attestations are off", ExitFailure, ""},
		{CodeInternal, http.StatusInternalServerError, "Internal error", ExitFailure, "UNKNOWN"},
	}
	ociOnly := []row{
		{CodeOCIBlobUnknown, http.StatusNotFound, "The blob is not in the repository", ExitFailure, "BLOB_UNKNOWN"},
		{CodeOCIUploadUnknown, http.StatusNotFound, "The upload session does not exist or has ended", ExitFailure, "BLOB_UPLOAD_UNKNOWN"},
		{CodeOCIDigestInvalid, http.StatusBadRequest, "The digest is missing or not a valid digest", ExitMalformed, "DIGEST_INVALID"},
		{CodeOCIManifestBlobUnknown, http.StatusBadRequest, "The manifest references a blob or manifest that is not in the repository", ExitPolicy, "MANIFEST_BLOB_UNKNOWN"},
		{CodeOCIManifestInvalid, http.StatusBadRequest, "The manifest or its tag is not valid", ExitMalformed, "MANIFEST_INVALID"},
		{CodeOCIManifestTooLarge, http.StatusRequestEntityTooLarge, "The manifest is larger than allowed", ExitPolicy, "MANIFEST_INVALID"},
		{CodeOCIManifestUnknown, http.StatusNotFound, "The manifest is not in the repository", ExitFailure, "MANIFEST_UNKNOWN"},
		{CodeOCINameInvalid, http.StatusBadRequest, "The repository name is not valid", ExitMalformed, "NAME_INVALID"},
		{CodeOCINameUnknown, http.StatusNotFound, "The repository or endpoint does not exist", ExitFailure, "NAME_UNKNOWN"},
		{CodeOCISizeInvalid, http.StatusBadRequest, "The body's length does not match what the request says", ExitMalformed, "SIZE_INVALID"},
		{CodeOCIBlobTooLarge, http.StatusRequestEntityTooLarge, "The blob is larger than allowed", ExitPolicy, "SIZE_INVALID"},
		{CodeOCIRangeInvalid, http.StatusRequestedRangeNotSatisfiable, "The chunk's Content-Range does not continue the upload", ExitMalformed, "RANGE_INVALID"},
		{CodeOCIUnsupported, http.StatusBadRequest, "A parameter or grant the registry does not support", ExitMalformed, "UNSUPPORTED"},
		{CodeOCIReleaseImmutable, http.StatusForbidden, "A published release may not be changed or deleted", ExitPolicy, "DENIED"},
		{CodeOCIBlobReferenced, http.StatusForbidden, "The blob is referenced by a manifest of the repository", ExitPolicy, "DENIED"},
	}
	out := make([]CodeInfo, 0, len(rest)+len(ociOnly))
	for _, r := range rest {
		out = append(out, CodeInfo{Code: r.code, Status: r.status, Title: r.title, Exit: r.exit, OCI: r.oci})
	}
	for _, r := range ociOnly {
		out = append(out, CodeInfo{Code: r.code, Status: r.status, Title: r.title, Exit: r.exit, OCI: r.oci, OCIOnly: true})
	}
	return out
}

// Registry lists every registered code, REST and OCI-only. The tables in api/openapi.yaml
// and README.md are generated from it (go run ./internal/tools/errtable -w).
func Registry() []CodeInfo { return registry() }

// Codes lists the codes of REST problem documents: the registry without its OCI-only
// entries. openapi.yaml's Problem.code enum is this list.
func Codes() []CodeInfo {
	var out []CodeInfo
	for _, ci := range registry() {
		if !ci.OCIOnly {
			out = append(out, ci)
		}
	}
	return out
}

// Lookup returns the registry entry of c.
func Lookup(c Code) (CodeInfo, bool) {
	for _, ci := range registry() {
		if ci.Code == c {
			return ci, true
		}
	}
	return CodeInfo{}, false
}

// Status returns the HTTP status registered for c, or 500 for an unknown code.
func (c Code) Status() int {
	if ci, ok := Lookup(c); ok {
		return ci.Status
	}
	return http.StatusInternalServerError
}

// Title returns the registered title of c.
func (c Code) Title() string {
	if ci, ok := Lookup(c); ok {
		return ci.Title
	}
	return "Internal error"
}

// Exit returns the CLI exit class registered for c; a code this build does not know (a
// newer server's) is ExitFailure.
func (c Code) Exit() ExitClass {
	if ci, ok := Lookup(c); ok {
		return ci.Exit
	}
	return ExitFailure
}

// Error is an error with a wire code and a message for the user that says what failed and
// what to do. Err, if set, is the cause; it is never shown to users.
type Error struct {
	Code   Code
	Detail string
	Err    error
	// OCIDetail is the distribution spec's structured `detail` of an answer of the OCI
	// registry (e.g. {"digest": …}); REST problem documents do not carry it.
	OCIDetail any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, &api.Error{Code: c}) match on the code alone.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && t.Detail == ""
	}
	return false
}

// Errorf builds an *Error with a formatted detail.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// OCIErrorf builds an *Error for the OCI registry, with the spec's structured detail
// (nil for none).
func OCIErrorf(code Code, detail any, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...), OCIDetail: detail}
}

// Wrap builds an *Error that keeps cause for logs and errors.Is.
func Wrap(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// CodeOf returns the code of the first *Error in err's chain, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Problem is an RFC 9457 problem document with Cairn's stable code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   Code   `json:"code"`
}

// ProblemTypeBase prefixes the type URI of every problem document.
const ProblemTypeBase = "https://cairn.dev/problems/"

// ProblemFor renders err as a problem document. Internal details are never included.
func ProblemFor(err error) Problem {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeInternal, Detail: "an internal error occurred; the server log has details"}
	}
	ci, ok := Lookup(e.Code)
	if !ok { // a code this build does not know is answered as Status and Title say
		ci = CodeInfo{Status: http.StatusInternalServerError, Title: "Internal error"}
	}
	return Problem{
		Type:   ProblemTypeBase + string(e.Code),
		Title:  ci.Title,
		Status: ci.Status,
		Detail: e.Detail,
		Code:   e.Code,
	}
}

// AsError turns a problem document received by a client back into an *Error.
func (p Problem) AsError() *Error {
	return &Error{Code: p.Code, Detail: p.Detail}
}

// OCIErrors is an error answer of the OCI registry (/v2/) in the distribution spec's
// format: {"errors":[{"code":"…","message":"…","detail":…}]}.
type OCIErrors struct {
	Errors []OCIErrorItem `json:"errors"`
}

// OCIErrorItem is one error of an OCIErrors document.
type OCIErrorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// OCIInternalMessage is the message of an OCI answer to an error the registry has no OCI
// code for: its text may name internals, so only the server log has it.
const OCIInternalMessage = "internal error; the server log has the details"

// OCIAnswerFor renders err for the OCI registry: the registered status and the spec's
// error document. The first *Error in err's chain decides; if it has no OCI code (or there
// is none) the answer is internal, without the error's text.
func OCIAnswerFor(err error) (int, OCIErrors) {
	var e *Error
	ci, ok := CodeInfo{}, false
	if errors.As(err, &e) {
		ci, ok = Lookup(e.Code)
	}
	if !ok || ci.OCI == "" {
		ci, _ = Lookup(CodeInternal)
		e = &Error{Code: CodeInternal, Detail: OCIInternalMessage}
	}
	return ci.Status, OCIErrors{Errors: []OCIErrorItem{{Code: ci.OCI, Message: e.Detail, Detail: e.OCIDetail}}}
}
