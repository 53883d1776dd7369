package client

import (
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestNextLinksRole(t *testing.T) {
	now := time.Now()
	base := metadata.Targets(now.Add(time.Hour))
	base.Signed.Version = 3
	links := tufrepo.ProjectLinks{Homepage: "https://hello.dev"}
	next, err := NextLinksRole(base, "hello", links, now)
	if err != nil || next.Signed.Version != 4 || ProjectLinksOf(next) != links {
		t.Fatalf("declaring: %+v, %v", next, err)
	}
	if _, err := NextLinksRole(next, "hello", links, now); api.CodeOf(err) != api.CodeBadRequest {
		t.Fatalf("the same links again: %v, want bad_request", err)
	}
	if _, err := NextLinksRole(base, "hello", tufrepo.ProjectLinks{}, now); api.CodeOf(err) != api.CodeBadRequest {
		t.Fatalf("removing links that are not there: %v, want bad_request", err)
	}
	// A malformed declaration reads as none, and can still be removed.
	bad := metadata.Targets(now.Add(time.Hour))
	bad.Signed.Version = 5
	bad.Signed.UnrecognizedFields = map[string]any{tufrepo.ProjectLinksField: map[string]any{"homepage": "javascript:alert(1)"}, "other": "kept"}
	cleared, err := NextLinksRole(bad, "hello", tufrepo.ProjectLinks{}, now)
	if err != nil {
		t.Fatalf("removing a malformed declaration: %v", err)
	}
	if _, ok := cleared.Signed.UnrecognizedFields[tufrepo.ProjectLinksField]; ok || cleared.Signed.UnrecognizedFields["other"] != "kept" {
		t.Fatalf("after removal: %v", cleared.Signed.UnrecognizedFields)
	}
	if _, ok := bad.Signed.UnrecognizedFields[tufrepo.ProjectLinksField]; !ok {
		t.Fatal("the current role was changed")
	}
	if _, err := NextLinksRole(base, "hello", tufrepo.ProjectLinks{Homepage: "http://hello.dev"}, now); api.CodeOf(err) != api.CodeBadRequest {
		t.Fatalf("an http homepage: %v", err)
	}
}
