package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// liveMaintainer boots a real cairnd on PostgreSQL and a CLI pinned to it, with keys alice
// and bob and project widget (both maintainers, threshold 1).
func liveMaintainer(t *testing.T, db string) (*testrepo.Repo, *cli) {
	t.Helper()
	u, drop, err := testdb.Create(db)
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	c := newCLI(t)
	c.vars["CAIRN_TOKEN"] = r.AdminToken
	c.ok("init", "--server", r.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(r.RootJSON)))
	c.ok("key", "generate", "--name", "alice")
	c.ok("key", "generate", "--name", "bob")
	bob := writeFile(t, t.TempDir(), "bob.pub", c.ok("key", "export", "--public", "bob"))
	c.ok("project", "create", "widget", "--key", "alice", "--maintainer", bob)
	return r, c
}

func TestDiffLive(t *testing.T) {
	_, c := liveMaintainer(t, "cli_diff")
	dist := t.TempDir()
	// v2: 1.0 with two files.
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget.tar.gz", "one"), writeFile(t, dist, "widget.whl", "wheel one"), "--key", "alice")
	// v3: 2.0 changes widget.tar.gz, drops the wheel, adds notes.txt; signed by bob.
	d2 := t.TempDir()
	c.ok("upload", "widget", "2.0", writeFile(t, d2, "widget.tar.gz", "two, longer"), writeFile(t, d2, "notes.txt", "notes"), "--key", "bob")
	// v4: re-signed by both, then the threshold goes from 1 to 2.
	c.ok("project", "resign", "widget", "--key", "alice", "--key", "bob")
	c.ok("project", "threshold", "widget", "2", "--key", "alice")
	// v5: 1.0 yanked, proposed by alice, completed by bob.
	c.run("yank", "widget", "1.0", "--key", "alice", "--reason", "broken")
	c.ok("sign", "widget", "--key", "bob", "--yes")

	// Releases: a changed hash, an added and a removed file, signers of each side, the
	// threshold change between them, and the yank.
	var d client.Diff
	if err := json.Unmarshal([]byte(c.ok("diff", "widget", "1.0", "2.0", "--output", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.From.Version != 2 || d.To.Version != 3 || d.From.Verified != "history" || d.To.Verified != "history" {
		t.Fatalf("sides = %+v / %+v", d.From, d.To)
	}
	if len(d.Files.Changed) != 1 || d.Files.Changed[0].Path != "widget.tar.gz" || d.Files.Changed[0].Before.SHA256 == d.Files.Changed[0].After.SHA256 ||
		len(d.Files.Added) != 1 || d.Files.Added[0].Name != "notes.txt" || len(d.Files.Removed) != 1 || d.Files.Removed[0].Name != "widget.whl" {
		t.Fatalf("files = %+v", d.Files)
	}
	alice, bob := keyIDOf(t, c, "alice"), keyIDOf(t, c, "bob")
	if !signedOnly(d.From, alice) || !signedOnly(d.To, bob) {
		t.Fatalf("signers: from %+v, to %+v", d.From.Keys, d.To.Keys)
	}
	if off := "none (the repository takes no attestations)"; d.Attestations.From != off || d.Attestations.To != off {
		t.Errorf("attestations = %+v", d.Attestations)
	}
	text := squash(c.ok("diff", "widget", "1.0", "2.0"))
	for _, want := range []string{"changed widget.tar.gz 3 → 11 bytes", "added notes.txt 5 bytes", "removed widget.whl 9 bytes", "1.0 now (role version 5): YANKED (reason: broken)", "Attestations: from none (the repository takes no attestations)"} {
		if !strings.Contains(text, want) {
			t.Errorf("diff text lacks %q:\n%s", want, text)
		}
	}

	// Role versions across the threshold change: 3 (threshold 1) to 5 (threshold 2, the
	// current version, verified by the updater), with the yank.
	if err := json.Unmarshal([]byte(c.ok("diff", "widget", "--role-versions", "3", "5", "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Maintainers.ThresholdBefore != 1 || d.Maintainers.ThresholdAfter != 2 || d.To.Verified != "tuf-updater" || d.To.Signatures != 2 || !d.To.ThresholdMet {
		t.Fatalf("maintainers %+v, to %+v", d.Maintainers, d.To)
	}
	if len(d.Yanked) != 1 || d.Yanked[0].Version != "1.0" || d.Yanked[0].Reason != "broken" || !d.Files.Empty() {
		t.Fatalf("yanks %+v files %+v", d.Yanked, d.Files)
	}
	if text := c.ok("diff", "widget", "--role-versions", "3", "5"); !strings.Contains(text, "CHANGES the threshold from 1 to 2") || !strings.Contains(text, "yanked 1.0 (reason: broken)") || !strings.Contains(text, "not compared for role versions") {
		t.Errorf("role-versions text:\n%s", text)
	}
	if text := squash(c.ok("diff", "widget", "--role-versions", "1", "2")); !strings.Contains(text, "added widget/1.0/widget.tar.gz 3 bytes") {
		t.Errorf("role-versions 1 2:\n%s", text)
	}

	// The root chain: one root only, so there is nothing to compare; version 2 is refused.
	c.fails(20, "root version 2 does not exist", "diff", "--root", "1", "2")

	// Bad input is refused with a clear error and writes nothing.
	home := snapshotTree(t, c.home)
	for _, tt := range []struct {
		code int
		want string
		args []string
	}{
		{20, `project "nosuch" is not in the verified metadata`, []string{"diff", "nosuch", "1.0", "2.0"}},
		{20, `no release "9.9"`, []string{"diff", "widget", "1.0", "9.9"}},
		{10, "releases in the wrong order: 2.0 is newer than 1.0", []string{"diff", "widget", "2.0", "1.0"}},
		{10, "both sides are release 1.0", []string{"diff", "widget", "1.0", "1.0"}},
		{10, "role versions in the wrong order: 5 is not older than 3", []string{"diff", "widget", "--role-versions", "5", "3"}},
		{20, "has no role version 9", []string{"diff", "widget", "--role-versions", "2", "9"}},
		{10, `role version "x" is not a positive integer`, []string{"diff", "widget", "--role-versions", "x", "3"}},
		{10, `root version "0" is not a positive integer`, []string{"diff", "--root", "0", "1"}},
		{10, "root versions in the wrong order", []string{"diff", "--root", "1", "1"}},
		{10, "accepts 3 arg(s)", []string{"diff", "widget", "1.0"}},
		{10, "--output must be text or json", []string{"diff", "widget", "1.0", "2.0", "-o", "yaml"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) { c.fails(tt.code, tt.want, tt.args...) })
	}
	if after := snapshotTree(t, c.home); after != home {
		t.Errorf("a refused diff changed the home:\nbefore %s\nafter %s", home, after)
	}
}

// snapshotTree lists the files under dir with their sizes, except the metadata cache,
// which every verified read refreshes.
func snapshotTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() && info.Name() == "metadata" {
			return filepath.SkipDir
		}
		b.WriteString(p + " " + info.Mode().String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func keyIDOf(t *testing.T, c *cli, name string) string {
	t.Helper()
	var infos []keyInfo
	if err := json.Unmarshal([]byte(c.ok("key", "list", "--output", "json")), &infos); err != nil {
		t.Fatal(err)
	}
	for _, k := range infos {
		if k.Name == name {
			return k.KeyID
		}
	}
	t.Fatalf("no key %s", name)
	return ""
}

// signedOnly reports whether keyID, and no other key, signed the side.
func signedOnly(h *client.HistoricalRole, keyID string) bool {
	n := 0
	for _, k := range h.Keys {
		if k.Signed {
			n++
			if k.KeyID != keyID {
				return false
			}
		}
	}
	return n == 1 && h.Signatures == 1
}

// squash collapses runs of spaces, so that tests do not depend on table widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// The root chain: version 2 adds a timestamp key and moves the expiry; diff --root shows
// both, with the root key that signed version 2, verified from the pinned version 1.
func TestDiffRoot(t *testing.T) {
	srv := clienttest.New(t)
	c := newCLI(t)
	c.ok("init", "--server", srv.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(srv.Root())))
	v1, err := metadata.Root().FromBytes(srv.Root())
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := metadata.Root().FromBytes(srv.Root())
	v2.Signatures = nil
	v2.Signed.Version = 2
	v2.Signed.Expires = v1.Signed.Expires.Add(24 * time.Hour)
	extra := clienttest.NewKey(t)
	if err := v2.Signed.AddKey(extra.Public, tufrepo.RoleTimestamp); err != nil {
		t.Fatal(err)
	}
	rootKey := srv.RoleKey(tufrepo.RoleRoot)
	if _, err := v2.Sign(rootKey.Signer); err != nil {
		t.Fatal(err)
	}
	raw, err := v2.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetFile("2.root.json", raw)

	var d client.RootDiff
	if err := json.Unmarshal([]byte(c.ok("diff", "--root", "1", "2", "--output", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Pinned != 1 || d.Current != 2 || !d.To.Expires.Equal(v2.Signed.Expires) || len(d.To.SignedBy) != 1 || d.To.SignedBy[0] != rootKey.ID {
		t.Fatalf("root diff = %+v", d)
	}
	for _, r := range d.Roles {
		changed := r.Role == tufrepo.RoleTimestamp
		if r.Changed() != changed || (changed && (len(r.Added) != 1 || r.Added[0].KeyID != extra.ID)) {
			t.Errorf("role %s: %+v", r.Role, r)
		}
	}
	if text := squash(c.ok("diff", "--root", "1", "2")); !strings.Contains(text, "timestamp 1 "+extra.ID[:16]) {
		t.Errorf("root diff text:\n%s", text)
	}
	c.fails(10, "root versions in the wrong order: 2 is not older than 1", "diff", "--root", "2", "1")
	c.fails(20, "root version 3 does not exist", "diff", "--root", "1", "3")
}

// A past version that the server swapped is refused: bytes that do not match the audit
// log, and (with the log rewritten to match) a file that holds another version.
func TestDiffRefusesTamperedHistory(t *testing.T) {
	srv, c := maintainer(t)
	dist := t.TempDir()
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget-1.0.tar.gz", "one"), "--key", "alice")
	c.ok("upload", "widget", "2.0", writeFile(t, dist, "widget-2.0.tar.gz", "two"), "--key", "alice")
	c.ok("upload", "widget", "3.0", writeFile(t, dist, "widget-3.0.tar.gz", "three"), "--key", "alice")
	c.ok("diff", "widget", "--role-versions", "2", "3")

	v3 := srv.File("3.widget.json")
	srv.SetFile("2.widget.json", v3)
	c.fails(1, "the audit log (entry", "diff", "widget", "--role-versions", "2", "3")

	sum := sha256.Sum256(v3)
	srv.RewriteLog(func(es []api.LogEntry) []api.LogEntry {
		var prev []byte
		for i := range es {
			if es[i].Role == "widget" && es[i].Version == 2 {
				es[i].Length, es[i].SHA256 = int64(len(v3)), hex.EncodeToString(sum[:])
			}
			es[i].PrevHash = hex.EncodeToString(prev)
			es[i].Hash = hex.EncodeToString(tufrepo.AuditHash(prev, es[i]))
			prev, _ = hex.DecodeString(es[i].Hash)
		}
		return es
	})
	c.fails(4, "2.widget.json holds version 3", "diff", "widget", "--role-versions", "2", "3")
}
