package tufrepo_test

import (
	"encoding/json"
	"testing"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestReadYank(t *testing.T) {
	for _, tc := range []struct {
		custom string
		yanked bool
		reason string
	}{
		{`{"yanked":true,"yank_reason":"broken"}`, true, "broken"},
		{`{"yanked": true}`, true, ""},
		{`{"yanked":true,"yank_reason":42}`, true, ""}, // no reason, still yanked
		{`{"yanked":true,"yank_reason":null}`, true, ""},
		{`{"yanked":false,"yank_reason":"x"}`, false, ""},
		{`{"yanked":"true"}`, false, ""},
		{`{"yanked":1}`, false, ""},
		{`{"Yanked":true}`, false, ""}, // only the exact key: Go's case folding does not apply
		{`{"version":"1.0"}`, false, ""},
		{`null`, false, ""},
		{`[true]`, false, ""},
		{`"yanked"`, false, ""},
		{``, false, ""},
		{`{"yanked":true`, false, ""},
	} {
		y, r := tufrepo.ReadYank([]byte(tc.custom))
		if y != tc.yanked || r != tc.reason {
			t.Errorf("ReadYank(%s) = %v, %q; want %v, %q", tc.custom, y, r, tc.yanked, tc.reason)
		}
	}
}

func TestReleaseYank(t *testing.T) {
	custom := func(s string) *metadata.TargetFiles {
		raw := json.RawMessage(s)
		return &metadata.TargetFiles{Custom: &raw}
	}
	targets := map[string]*metadata.TargetFiles{
		"p/1/a.whl": custom(`{"yanked":true}`),
		"p/1/b.whl": custom(`{"yanked":true,"yank_reason":"from b"}`),
		"p/1/c.whl": custom(`{"yanked":true,"yank_reason":"from c"}`),
		"p/2/a.whl": {},
		"p/2/b.whl": custom(`{"yanked":false,"yank_reason":"not yanked"}`),
	}
	for _, tc := range []struct {
		paths  []string
		yanked bool
		reason string
	}{
		// The first file by path that gives a reason gives it, whatever order the paths come in.
		{[]string{"p/1/c.whl", "p/1/a.whl", "p/1/b.whl"}, true, "from b"},
		{[]string{"p/1/c.whl"}, true, "from c"},
		{[]string{"p/2/a.whl", "p/2/b.whl"}, false, ""},
		{[]string{"p/2/a.whl", "p/1/a.whl"}, true, ""},
		{[]string{"p/9/missing"}, false, ""},
	} {
		y, r := tufrepo.ReleaseYank(targets, tc.paths)
		if y != tc.yanked || r != tc.reason {
			t.Errorf("ReleaseYank(%v) = %v, %q; want %v, %q", tc.paths, y, r, tc.yanked, tc.reason)
		}
	}
}
