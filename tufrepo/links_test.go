package tufrepo_test

import (
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/tufrepo"
)

func TestProjectLinks(t *testing.T) {
	for _, tc := range []struct {
		l   tufrepo.ProjectLinks
		err string
	}{
		{tufrepo.ProjectLinks{}, ""},
		{tufrepo.ProjectLinks{Homepage: "https://hello.dev", Repository: "https://github.com/hello/hello"}, ""},
		{tufrepo.ProjectLinks{Homepage: "http://hello.dev"}, "not an https:// URL"},
		{tufrepo.ProjectLinks{Homepage: "https://"}, "not an https:// URL"},
		{tufrepo.ProjectLinks{Homepage: "https://user@hello.dev"}, "not an https:// URL"},
		{tufrepo.ProjectLinks{Repository: "https://github.com/x?y=1"}, "repository link"},
		{tufrepo.ProjectLinks{Repository: "https://github.com/x#frag"}, "repository link"},
		{tufrepo.ProjectLinks{Homepage: "https://hello.dev/ a"}, "not an https:// URL"},
		{tufrepo.ProjectLinks{Homepage: "https://hello.dev/" + strings.Repeat("a", 600)}, "at most 512"},
	} {
		err := tufrepo.ValidateProjectLinks(tc.l)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ValidateProjectLinks(%+v) = %v, want %q", tc.l, err, tc.err)
		}
	}
	good := map[string]any{"cairn_links": map[string]any{"homepage": "https://Hello.dev:443/x", "repository": "https://github.com/hello/hello"}}
	if l := tufrepo.ReadProjectLinks(good); l.Host() != "hello.dev" || l.Repository != "https://github.com/hello/hello" {
		t.Errorf("ReadProjectLinks = %+v (host %q)", l, l.Host())
	}
	for _, bad := range []map[string]any{
		nil,
		{"cairn_links": "https://hello.dev"},
		{"cairn_links": map[string]any{"homepage": 42}},
		{"cairn_links": map[string]any{"homepage": "http://hello.dev"}},
		{"Cairn_Links": map[string]any{"homepage": "https://hello.dev"}},
	} {
		if l := tufrepo.ReadProjectLinks(bad); l != (tufrepo.ProjectLinks{}) {
			t.Errorf("ReadProjectLinks(%v) = %+v, want none", bad, l)
		}
	}
	// The field name is known to the strict JSON check: a case-folded twin is ambiguous.
	doc := []byte(`{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0.31","version":2,"expires":"2030-01-01T00:00:00Z","targets":{},"cairn_links":{"homepage":"https://a.dev"},"Cairn_Links":{"homepage":"https://b.dev"}}}`)
	if err := tufrepo.CheckJSON(doc, "project role"); err == nil || !strings.Contains(err.Error(), "differently") {
		t.Errorf("a case-folded twin of cairn_links: %v", err)
	}
}
