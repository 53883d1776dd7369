package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

func TestYankUnyankThresholdOne(t *testing.T) {
	_, c := maintainer(t)
	dist := t.TempDir()
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget-1.0.tar.gz", "one"), "--key", "alice")
	c.ok("upload", "widget", "2.0", writeFile(t, dist, "widget-2.0.tar.gz", "two"), "--key", "alice")
	out := c.ok("yank", "widget", "2.0", "--key", "bob", "--reason", "data loss on upgrade")
	if !strings.Contains(out, "Yanked widget 2.0 (1 file) in role version 4, published in snapshot") {
		t.Fatalf("yank = %s", out)
	}
	out = c.ok("releases", "widget")
	if !strings.Contains(out, "VERSION  STATUS") || !strings.Contains(out, "widget 2.0 is yanked: data loss on upgrade") {
		t.Fatalf("releases = %s", out)
	}
	var list releaseList
	if err := json.Unmarshal([]byte(c.ok("releases", "widget", "--output", "json")), &list); err != nil || !list.Releases[0].Yanked || list.Releases[0].YankReason != "data loss on upgrade" || list.Releases[1].Yanked {
		t.Fatalf("releases json = %+v %v", list, err)
	}
	dl := filepath.Join(t.TempDir(), "dl")
	r := c.run("get", "widget", "-o", dl)
	if r.code != 0 || !strings.Contains(r.stderr, "skipping widget 2.0, which is yanked") {
		t.Fatalf("get latest: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dl, "widget-1.0.tar.gz")); err != nil {
		t.Fatal("get latest did not pick 1.0")
	}
	r = c.run("get", "widget@2.0", "-o", dl)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: widget 2.0 is yanked (reason: data loss on upgrade)") {
		t.Fatalf("get pinned: %+v", r)
	}
	c.fails(10, "already yanked", "yank", "widget", "2.0", "--key", "alice")
	c.fails(20, "no release", "yank", "widget", "3.0", "--key", "alice")
	c.fails(10, "not yanked", "unyank", "widget", "1.0", "--key", "alice")
	c.fails(10, "printable", "yank", "widget", "1.0", "--key", "alice", "--reason", "a\x00b")
	c.ok("key", "generate", "--name", "mallory")
	c.fails(3, "not a maintainer key", "yank", "widget", "1.0", "--key", "mallory")

	var res yankResult
	if err := json.Unmarshal([]byte(c.ok("unyank", "widget", "2.0", "--key", "alice", "--output", "json")), &res); err != nil || res.Status != api.StatusPublished || res.Yanked || res.RoleVersion != 5 {
		t.Fatalf("unyank json = %+v %v", res, err)
	}
	if out := c.ok("releases", "widget"); strings.Contains(out, "yanked") {
		t.Fatalf("releases after unyank = %s", out)
	}
}
