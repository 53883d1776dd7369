package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ExitCode is the CLI's stable exit status for an outcome (DESIGN.md "Errors and bad
// input"). Scripts switch on these numbers, so they never change meaning.
type ExitCode int

const (
	// ExitOK: everything verified and succeeded.
	ExitOK ExitCode = 0
	// ExitHashMismatch: a file or metadata file does not have the length or hash that
	// signed metadata lists for it.
	ExitHashMismatch ExitCode = 1
	// ExitSignatureInvalid: a signature by a trusted key does not verify, or there are
	// fewer valid signatures than the threshold.
	ExitSignatureInvalid ExitCode = 2
	// ExitKeyNotTrusted: metadata is signed by keys that the delegating role does not
	// trust for it.
	ExitKeyNotTrusted ExitCode = 3
	// ExitPolicy: the metadata verified but a rule refused it: expired, rolled back, a
	// version out of order, a published file changed, or the server refused by policy.
	ExitPolicy ExitCode = 4
	// ExitMalformed: input that cannot be parsed or is not well formed: bad metadata,
	// a bad name, path, key or command line.
	ExitMalformed ExitCode = 10
	// ExitFailure: anything else (network, server unavailable, not found, local I/O, a
	// token the server does not accept).
	ExitFailure ExitCode = 20
)

// VerifyError is a verification failure of TUF metadata or of a downloaded file. It names
// what failed (Role and/or Target) and why, and carries the exit code it maps to.
type VerifyError struct {
	Code   ExitCode
	Role   string // the role whose metadata failed, if any
	Target string // the target path whose file failed, if any
	Detail string // what is wrong, in plain language
	Err    error  // the underlying cause (usually a go-tuf error)
}

func (e *VerifyError) Error() string {
	var what string
	switch {
	case e.Target != "" && e.Role != "":
		what = fmt.Sprintf("target %q (role %q)", e.Target, e.Role)
	case e.Target != "":
		what = fmt.Sprintf("target %q", e.Target)
	case e.Role != "":
		what = fmt.Sprintf("%s metadata", e.Role)
	default:
		what = "TUF metadata"
	}
	msg := fmt.Sprintf("verification of %s failed (%s): %s", what, e.Code, e.Detail)
	if e.Err != nil && !strings.Contains(e.Detail, e.Err.Error()) {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *VerifyError) Unwrap() error { return e.Err }

// String names an exit code for messages.
func (c ExitCode) String() string {
	switch c {
	case ExitOK:
		return "ok"
	case ExitHashMismatch:
		return "hash mismatch"
	case ExitSignatureInvalid:
		return "signature invalid"
	case ExitKeyNotTrusted:
		return "key not trusted"
	case ExitPolicy:
		return "policy rejection"
	case ExitMalformed:
		return "malformed input"
	default:
		return "failure"
	}
}

// Classify maps an error from this package, from the API or from go-tuf to its exit code.
// nil is ExitOK. The first VerifyError, error with an ExitCode() ExitCode method (a
// report such as 'cairn doctor' that found problems) or *api.Error in the chain decides; raw go-tuf
// errors are mapped by type; anything unrecognised is ExitFailure.
func Classify(err error) ExitCode {
	if err == nil {
		return ExitOK
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Code
	}
	var ce interface{ ExitCode() ExitCode }
	if errors.As(err, &ce) {
		return ce.ExitCode()
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return CodeExit(ae.Code)
	}
	if c, ok := tufExitCode(err); ok {
		return c
	}
	return ExitFailure
}

// CodeExit maps a wire error code (as the server returns it) to an exit code.
func CodeExit(c api.Code) ExitCode {
	switch c {
	case api.CodeHashMismatch, api.CodeLengthMismatch, api.CodeDigestMismatch, api.CodeAttestationSubject:
		return ExitHashMismatch
	case api.CodeSignatureInvalid, api.CodeThresholdNotMet, api.CodeAttestationNotIncluded, api.CodeAttestationInvalid:
		return ExitSignatureInvalid
	case api.CodeKeyNotDelegated, api.CodeAttestationKeyUnknown:
		return ExitKeyNotTrusted
	case api.CodeVersionConflict, api.CodeExpired, api.CodeExpiryTooFar, api.CodeImmutablePath,
		api.CodePathOutsideProject, api.CodeDelegationForbidden, api.CodeTooMany, api.CodeTooLarge,
		api.CodeProjectExists, api.CodeBlobMissing, api.CodeForbidden,
		api.CodeProposalExists, api.CodeProposalStale, api.CodeProposalExpired, api.CodeSignatureRepeated, api.CodeOCITagCollision,
		api.CodeNotLogged, api.CodeRoleNotInTree, api.CodeReadOnlyMirror, api.CodeAttestationExists:
		return ExitPolicy
	case api.CodeBadRequest, api.CodeMethodNotAllowed, api.CodeMalformedJSON, api.CodeMalformedMetadata, api.CodeAmbiguousJSON, api.CodeInvalidName,
		api.CodeInvalidPath, api.CodeInvalidKey, api.CodeInvalidThreshold, api.CodeUnsupported,
		api.CodeBundleMalformed, api.CodeBundleMediaType:
		return ExitMalformed
	default:
		return ExitFailure
	}
}

// tufExitCode maps go-tuf's error types (and the parse errors go-tuf passes through) when
// no VerifyError was built around them, e.g. by an SDK user calling go-tuf directly.
func tufExitCode(err error) (ExitCode, bool) {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ExitFailure, true
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}), errors.Is(err, &metadata.ErrDownloadLengthMismatch{}):
		return ExitHashMismatch, true
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		return ExitSignatureInvalid, true
	case errors.Is(err, &metadata.ErrBadVersionNumber{}), errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return ExitPolicy, true
	case errors.Is(err, &metadata.ErrDownload{}):
		return ExitFailure, true
	case errors.Is(err, &metadata.ErrRepository{}):
		if isMissingRoleMessage(err.Error()) {
			return ExitPolicy, true
		}
		return ExitMalformed, true
	case isMalformed(err):
		return ExitMalformed, true
	}
	return 0, false
}

// isMissingRoleMessage recognises go-tuf's refusals of a snapshot that drops a role the
// client already trusts, or that does not list a delegated role: a rollback-style policy
// failure, not malformed input.
func isMissingRoleMessage(msg string) bool {
	return strings.Contains(msg, "is missing info for") || strings.Contains(msg, "does not contain information for")
}

// isMalformed recognises the parse errors that go-tuf returns unwrapped from FromBytes.
func isMalformed(err error) bool {
	var (
		syn   *json.SyntaxError
		typ   *json.UnmarshalTypeError
		tperr *time.ParseError
		hexb  hex.InvalidByteError
	)
	switch {
	case errors.As(err, &syn), errors.As(err, &typ), errors.As(err, &tperr), errors.As(err, &hexb),
		errors.Is(err, hex.ErrLength), errors.Is(err, &metadata.ErrValue{}), errors.Is(err, &metadata.ErrType{}):
		return true
	}
	// go-tuf's HexBytes reports bad hex as a plain error with this prefix.
	return strings.HasPrefix(err.Error(), "tuf: ")
}
