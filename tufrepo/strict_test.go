package tufrepo

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

// go-tuf v2.4.2's FromBytes panics on a null target; the strict readers, which read bytes
// from clients (claims, maintainer changes, rotations), refuse it instead.
func TestStrictReadersRefuseWhatPanicsGoTUF(t *testing.T) {
	const null = `{"signatures":[],"signed":{"_type":"targets","expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{"x":null},"version":1}}`
	_, err := ParseTargetsStrict([]byte(null), "the claimed role")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeMalformedMetadata || !strings.Contains(err.Error(), "the claimed role") {
		t.Fatalf("ParseTargetsStrict on a null target: %v, want malformed_metadata naming the document", err)
	}
}
