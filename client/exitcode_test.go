package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestClassify(t *testing.T) {
	var syntax error = json.Unmarshal([]byte("{"), new(any))
	tests := []struct {
		name string
		err  error
		want ExitCode
	}{
		{"nil", nil, ExitOK},
		{"verify error wrapped", fmt.Errorf("getting: %w", &VerifyError{Code: ExitKeyNotTrusted}), ExitKeyNotTrusted},
		{"server hash mismatch", api.Errorf(api.CodeHashMismatch, "x"), ExitHashMismatch},
		{"server digest mismatch", api.Errorf(api.CodeDigestMismatch, "x"), ExitHashMismatch},
		{"server signature invalid", api.Errorf(api.CodeSignatureInvalid, "x"), ExitSignatureInvalid},
		{"server key not delegated", fmt.Errorf("submitting: %w", api.Errorf(api.CodeKeyNotDelegated, "x")), ExitKeyNotTrusted},
		{"server version conflict", api.Errorf(api.CodeVersionConflict, "x"), ExitPolicy},
		{"server immutable path", api.Errorf(api.CodeImmutablePath, "x"), ExitPolicy},
		{"invalid name", api.Errorf(api.CodeInvalidName, "x"), ExitMalformed},
		{"malformed metadata", api.Errorf(api.CodeMalformedMetadata, "x"), ExitMalformed},
		{"not found", api.Errorf(api.CodeNotFound, "x"), ExitFailure},
		{"unavailable", api.Errorf(api.CodeUnavailable, "x"), ExitFailure},
		// A token that is unknown or revoked is not a verdict on what was sent (exit 4
		// told scripts their upload broke a rule): it is a failure to retry with a good one.
		{"unauthorized", fmt.Errorf("uploading: %w", api.Errorf(api.CodeUnauthorized, "x")), ExitFailure},
		{"forbidden", api.Errorf(api.CodeForbidden, "x"), ExitPolicy},
		{"connection refused", &UnreachableError{URL: "http://127.0.0.1:1/metadata/timestamp.json", Reason: "r"}, ExitFailure},
		{"go-tuf hash", &metadata.ErrLengthOrHashMismatch{Msg: "x"}, ExitHashMismatch},
		{"go-tuf download too long", &metadata.ErrDownloadLengthMismatch{Msg: "x"}, ExitHashMismatch},
		{"go-tuf unsigned", &metadata.ErrUnsignedMetadata{Msg: "x"}, ExitSignatureInvalid},
		{"go-tuf expired", &metadata.ErrExpiredMetadata{Msg: "x"}, ExitPolicy},
		{"go-tuf rollback", &metadata.ErrBadVersionNumber{Msg: "x"}, ExitPolicy},
		{"go-tuf equal version", &metadata.ErrEqualVersionNumber{Msg: "x"}, ExitPolicy},
		{"go-tuf missing role", &metadata.ErrRepository{Msg: "new snapshot is missing info for a.json"}, ExitPolicy},
		{"go-tuf wrong type", &metadata.ErrRepository{Msg: "expected targets, got root"}, ExitMalformed},
		{"go-tuf value", &metadata.ErrValue{Msg: "x"}, ExitMalformed},
		{"json syntax", syntax, ExitMalformed},
		{"http status", &metadata.ErrDownloadHTTP{StatusCode: 502, URL: "u"}, ExitFailure},
		{"canceled", context.Canceled, ExitFailure},
		{"other", errors.New("disk full"), ExitFailure},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestEveryCodeHasAnExitCode(t *testing.T) {
	// A new wire code must be placed deliberately; internal errors are the only codes that
	// are expected to fall through to ExitFailure together with transport problems.
	fallthroughOK := map[api.Code]bool{
		api.CodeNotFound: true, api.CodeNotBootstrapped: true, api.CodeAlreadyBootstrapped: true,
		api.CodeUnavailable: true, api.CodeInternal: true,
		// A token the server does not accept (unknown, malformed, revoked).
		api.CodeUnauthorized: true,
		// A pruned snapshot version: the next refresh fetches the current timestamp.
		api.CodePruned: true,
		// A timestamp without a Merkle snapshot: the client uses the classic one.
		api.CodeNoMerkleTree: true,
		// The server cut an upload that came too slowly: a transport problem, to retry.
		api.CodeTooSlow: true,
		// The repository takes no attestations: nothing to verify, not a verdict.
		api.CodeAttestationsOff: true,
	}
	for _, ci := range api.Codes() {
		if CodeExit(ci.Code) == ExitFailure && !fallthroughOK[ci.Code] {
			t.Errorf("code %s maps to ExitFailure; give it a verification exit code or list it here", ci.Code)
		}
	}
}
