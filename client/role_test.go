package client

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// TestNextProjectRoleRefusesTagCollision: a release whose OCI tag another release has
// (3.0+x next to 3.0_x) is refused before anything is signed, as the server would refuse
// it (oci_tag_collision); versions whose tags differ are accepted.
func TestNextProjectRoleRefusesTagCollision(t *testing.T) {
	now := time.Now()
	v2, err := NextProjectRole(NewProjectRole(now), "demo", "3.0+x", []api.File{fileFor("a.tar.gz", "a")}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		version string
		refused bool
	}{
		{"3.0_x", true},
		{"3.0-x", false},
		{"3.0+y", false},
	} {
		_, err := NextProjectRole(v2, "demo", c.version, []api.File{fileFor("b.tar.gz", "b")}, now)
		p := api.ProblemFor(err)
		switch {
		case c.refused && (p.Code != api.CodeOCITagCollision || !strings.Contains(p.Detail, "release demo 3.0+x")):
			t.Errorf("%s: %v, want oci_tag_collision naming 3.0+x", c.version, err)
		case !c.refused && err != nil:
			t.Errorf("%s: refused: %v", c.version, err)
		}
	}
	if CodeExit(api.CodeOCITagCollision) != ExitPolicy {
		t.Errorf("oci_tag_collision exits %d, want %d", CodeExit(api.CodeOCITagCollision), ExitPolicy)
	}
}
