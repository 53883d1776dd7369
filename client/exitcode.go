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
// input"). Scripts switch on these numbers, so they never change meaning. It is
// api.ExitClass, the type the error registry gives every wire code's class in.
type ExitCode = api.ExitClass

// The exit codes; api.ExitClass documents each.
const (
	ExitOK               = api.ExitOK
	ExitHashMismatch     = api.ExitHashMismatch
	ExitSignatureInvalid = api.ExitSignatureInvalid
	ExitKeyNotTrusted    = api.ExitKeyNotTrusted
	ExitPolicy           = api.ExitPolicy
	ExitMalformed        = api.ExitMalformed
	ExitFailure          = api.ExitFailure
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

// CodeExit maps a wire error code (as the server returns it) to an exit code: the exit
// class the error registry gives it (api.Registry), ExitFailure for a code this build
// does not know.
func CodeExit(c api.Code) ExitCode { return c.Exit() }

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
