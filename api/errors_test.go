package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

// TestOCIAnswerFor: the OCI registry's answer to an error comes from the registry entry of
// its code; an error without an OCI code is answered as internal without its text.
func TestOCIAnswerFor(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		want   api.OCIErrorItem
	}{
		{"OCI-only code with detail", fmt.Errorf("pushing: %w", api.OCIErrorf(api.CodeOCIBlobUnknown, map[string]string{"digest": "d"}, "blob %s is gone", "d")),
			http.StatusNotFound, api.OCIErrorItem{Code: "BLOB_UNKNOWN", Message: "blob d is gone", Detail: map[string]string{"digest": "d"}}},
		{"same spec code, another status", api.OCIErrorf(api.CodeOCIManifestTooLarge, nil, "big"),
			http.StatusRequestEntityTooLarge, api.OCIErrorItem{Code: "MANIFEST_INVALID", Message: "big"}},
		{"REST code with an OCI answer", api.Errorf(api.CodeForbidden, "not yours"),
			http.StatusForbidden, api.OCIErrorItem{Code: "DENIED", Message: "not yours"}},
		{"read-only mirror", api.Errorf(api.CodeReadOnlyMirror, "mirror"),
			http.StatusMethodNotAllowed, api.OCIErrorItem{Code: "DENIED", Message: "mirror"}},
		{"REST code without an OCI answer", api.Errorf(api.CodeVersionConflict, "secret detail"),
			http.StatusInternalServerError, api.OCIErrorItem{Code: "UNKNOWN", Message: api.OCIInternalMessage}},
		{"unregistered code", api.Errorf("no_such_code", "secret detail"),
			http.StatusInternalServerError, api.OCIErrorItem{Code: "UNKNOWN", Message: api.OCIInternalMessage}},
		{"not an api error", errors.New("open /var/lib/cairn: permission denied"),
			http.StatusInternalServerError, api.OCIErrorItem{Code: "UNKNOWN", Message: api.OCIInternalMessage}},
	}
	for _, tt := range tests {
		status, doc := api.OCIAnswerFor(tt.err)
		if status != tt.status || len(doc.Errors) != 1 || !reflect.DeepEqual(doc.Errors[0], tt.want) {
			t.Errorf("%s: OCIAnswerFor = %d %+v, want %d %+v", tt.name, status, doc, tt.status, tt.want)
		}
	}
}

// TestOneStatusPerCode: an entry answered on both surfaces has one status, so REST and
// /v2/ can never disagree about it.
func TestOneStatusPerCode(t *testing.T) {
	for _, ci := range api.Registry() {
		if ci.OCI == "" {
			continue
		}
		if p := api.ProblemFor(api.Errorf(ci.Code, "x")); !ci.OCIOnly && p.Status != ci.Status {
			t.Errorf("%s: REST status %d, registry %d", ci.Code, p.Status, ci.Status)
		}
		if st, _ := api.OCIAnswerFor(api.Errorf(ci.Code, "x")); st != ci.Status {
			t.Errorf("%s: OCI status %d, registry %d", ci.Code, st, ci.Status)
		}
	}
}
