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

// The registry of wire error codes. REST problem documents and CLI exit codes derive from it.
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
)

// CodeInfo describes one registered code.
type CodeInfo struct {
	Code   Code
	Status int
	Title  string
}

// Codes lists every registered code with its HTTP status and a short title. The OpenAPI
// document and the tests are checked against this list.
func Codes() []CodeInfo {
	return []CodeInfo{
		{CodeBadRequest, http.StatusBadRequest, "The request is not valid"},
		{CodeMalformedJSON, http.StatusBadRequest, "The request body is not valid JSON of the expected shape"},
		{CodeMalformedMetadata, http.StatusBadRequest, "The TUF metadata could not be parsed"},
		{CodeAmbiguousJSON, http.StatusBadRequest, "The JSON document could be read differently by different parsers"},
		{CodeInvalidName, http.StatusBadRequest, "The project name is not valid"},
		{CodeInvalidPath, http.StatusUnprocessableEntity, "A target path is not well formed"},
		{CodeInvalidKey, http.StatusBadRequest, "A public key is not valid or not supported"},
		{CodeInvalidThreshold, http.StatusBadRequest, "The threshold is not valid for the keys given"},
		{CodeUnauthorized, http.StatusUnauthorized, "A valid bearer token is required"},
		{CodeForbidden, http.StatusForbidden, "The token may not do this"},
		{CodeNotFound, http.StatusNotFound, "Not found"},
		{CodeMethodNotAllowed, http.StatusMethodNotAllowed, "The method is not allowed on this path"},
		{CodeProjectExists, http.StatusConflict, "The project already exists"},
		{CodeTooLarge, http.StatusRequestEntityTooLarge, "The request is larger than allowed"},
		{CodeTooSlow, http.StatusRequestTimeout, "The request body arrived too slowly"},
		{CodeDigestMismatch, http.StatusBadRequest, "The uploaded bytes do not match the digest"},
		{CodeBlobMissing, http.StatusUnprocessableEntity, "A target refers to a blob that was not uploaded"},
		{CodeLengthMismatch, http.StatusUnprocessableEntity, "A target's length does not match its blob"},
		{CodeHashMismatch, http.StatusUnprocessableEntity, "A target's hashes are not acceptable"},
		{CodeVersionConflict, http.StatusConflict, "The metadata version is not the next version"},
		{CodeExpired, http.StatusUnprocessableEntity, "The metadata has expired or expires too soon"},
		{CodeExpiryTooFar, http.StatusUnprocessableEntity, "The metadata expires later than allowed"},
		{CodePathOutsideProject, http.StatusUnprocessableEntity, "A target path is outside the project"},
		{CodeImmutablePath, http.StatusConflict, "A published target may not be changed or removed"},
		{CodeOCITagCollision, http.StatusConflict, "Another release of the project has the same OCI tag"},
		{CodeSignatureInvalid, http.StatusUnprocessableEntity, "A signature does not verify"},
		{CodeKeyNotDelegated, http.StatusForbidden, "The metadata is signed by a key the project does not delegate to"},
		{CodeThresholdNotMet, http.StatusUnprocessableEntity, "Not enough maintainer signatures"},
		{CodeDelegationForbidden, http.StatusUnprocessableEntity, "Project roles may not delegate"},
		{CodeProposalExists, http.StatusConflict, "A proposal for this project version is already open"},
		{CodeProposalStale, http.StatusConflict, "The proposal no longer applies: another version was published first"},
		{CodeProposalExpired, http.StatusGone, "The proposal has expired"},
		{CodeSignatureRepeated, http.StatusConflict, "This key has already signed the proposal"},
		{CodeTooMany, http.StatusUnprocessableEntity, "Too many items"},
		{CodeUnsupported, http.StatusUnsupportedMediaType, "Unsupported content type or algorithm"},
		{CodeNotBootstrapped, http.StatusServiceUnavailable, "The repository has not been bootstrapped"},
		{CodeAlreadyBootstrapped, http.StatusConflict, "The repository is already bootstrapped"},
		{CodeUnavailable, http.StatusServiceUnavailable, "The service is temporarily unavailable"},
		{CodeNotLogged, http.StatusNotFound, "The metadata version has no transparency log entry yet"},
		{CodePruned, http.StatusGone, "The metadata version is no longer kept"},
		{CodeNoMerkleTree, http.StatusNotFound, "The timestamp version carries no Merkle snapshot"},
		{CodeRoleNotInTree, http.StatusNotFound, "The Merkle snapshot of the timestamp has no leaf for the role"},
		{CodeReadOnlyMirror, http.StatusMethodNotAllowed, "This server is a read-only mirror"},
		{CodeBundleMalformed, http.StatusBadRequest, "The body is not a readable Sigstore bundle with an in-toto statement"},
		{CodeBundleMediaType, http.StatusUnsupportedMediaType, "The Sigstore bundle's media type is not v0.3"},
		{CodeAttestationSubject, http.StatusUnprocessableEntity, "The attestation is about another file"},
		{CodeAttestationNotIncluded, http.StatusUnprocessableEntity, "The bundle's transparency log entry is not proven to be in the log"},
		{CodeAttestationInvalid, http.StatusUnprocessableEntity, "The bundle does not verify against the repository's Sigstore trusted root"},
		{CodeAttestationExists, http.StatusConflict, "This attestation is already stored"},
		{CodeAttestationsOff, http.StatusNotFound, "The repository has no Sigstore trusted root: attestations are off"},
		{CodeInternal, http.StatusInternalServerError, "Internal error"},
		{CodeAttestationKeyUnknown, http.StatusUnprocessableEntity, "The bundle is signed by a key that is not a maintainer key of a project that published the file"},
	}
}

// Status returns the HTTP status registered for c, or 500 for an unknown code.
func (c Code) Status() int {
	for _, ci := range Codes() {
		if ci.Code == c {
			return ci.Status
		}
	}
	return http.StatusInternalServerError
}

// Title returns the registered title of c.
func (c Code) Title() string {
	for _, ci := range Codes() {
		if ci.Code == c {
			return ci.Title
		}
	}
	return "Internal error"
}

// Error is an error with a wire code and a message for the user that says what failed and
// what to do. Err, if set, is the cause; it is never shown to users.
type Error struct {
	Code   Code
	Detail string
	Err    error
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
	return Problem{
		Type:   ProblemTypeBase + string(e.Code),
		Title:  e.Code.Title(),
		Status: e.Code.Status(),
		Detail: e.Detail,
		Code:   e.Code,
	}
}

// AsError turns a problem document received by a client back into an *Error.
func (p Problem) AsError() *Error {
	return &Error{Code: p.Code, Detail: p.Detail}
}
