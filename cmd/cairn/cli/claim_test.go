package cli

import (
	"strings"
	"testing"
)

func TestAdminClaimRefusals(t *testing.T) {
	srv, c := maintainer(t)
	c.fails(10, "required flag(s) \"key\"", "admin", "claim", "--all")
	c.fails(10, "none of the others can be", "admin", "claim", "--key", "alice", "--all", "--project", "widget")
	c.fails(10, "not normalised", "admin", "claim", "--key", "alice", "--project", "Widget")
	c.fails(20, "no key named", "admin", "claim", "--key", "nosuch", "--all")
	// alice is a maintainer, not a claimed key: refused before anything is asked of the
	// server's admin API.
	c.fails(3, "not one of the claimed keys that the verified targets (version 1) delegates to", "admin", "claim", "--key", "alice", "--all", "--yes")
	delete(c.vars, "CAIRN_TOKEN")
	c.fails(10, "needs an API token", "admin", "claim", "--key", "alice", "--all")
	for _, r := range srv.Requests() {
		if strings.Contains(r, "/admin/") {
			t.Fatalf("a refused claim reached the admin API: %s", r)
		}
	}
	if out := c.ok("admin", "--help"); !strings.Contains(out, "claim") {
		t.Fatalf("admin help does not list claim: %s", out)
	}
	if out := c.ok("--help"); !strings.Contains(out, "maintainer") || !strings.Contains(out, "explain") {
		t.Fatalf("help does not list maintainer and explain: %s", out)
	}
	if out := c.ok("project", "--help"); !strings.Contains(out, "threshold") || !strings.Contains(out, "resign") {
		t.Fatalf("project help does not list threshold and resign: %s", out)
	}
}
