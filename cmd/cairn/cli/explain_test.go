package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestExplain(t *testing.T) {
	srv, c := maintainer(t)
	dist := t.TempDir()
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget-1.0.tar.gz", "source code"), "--key", "alice")
	c.ok("upload", "widget", "1.1", writeFile(t, dist, "widget-1.1.tar.gz", "newer"), "--key", "bob")

	out := c.ok("explain", "widget@1.0")
	for _, want := range []string{
		"widget 1.0, verified through snapshot",
		"root  version 1", "timestamp  version", "snapshot  version", "targets  version 1",
		"recently-claimed  version", "keys named by targets, for paths */*/*",
		"widget  version 3", "keys named by recently-claimed, for paths widget/*/*",
		"threshold:  1 of 2 keys; 1 signed: met", "not signed", "SHA256:",
		"widget is NOT claimed (delegated by recently-claimed): not claimed yet",
		"widget-1.0.tar.gz  11 bytes  sha256 ",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("explain does not say %q:\n%s", want, out)
		}
	}
	var e client.Explanation
	if err := json.Unmarshal([]byte(c.ok("explain", "widget", "--output", "json")), &e); err != nil {
		t.Fatal(err)
	}
	if e.Release != "1.1" || e.Claimed || len(e.Chain) != 6 || len(e.Files) != 1 || e.Files[0].Name != "widget-1.1.tar.gz" {
		t.Fatalf("json: %+v", e)
	}

	c.fails(20, "no release \"2.0\"", "explain", "widget@2.0")
	c.fails(20, "not in the verified metadata", "explain", "nosuch")
	c.fails(10, "names no version", "explain", "widget@")
	c.fails(10, "--output must be", "explain", "widget", "--output", "xml")

	// A role signed by a key nobody delegated to: refused as 'cairn get' refuses it.
	mallory := clienttest.NewKey(t)
	_, raw, _ := srv.Project("widget")
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	md.Signed.Version++
	md.Signed.Expires = time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	md.ClearSignatures()
	forged, err := client.SignRole(md, mallory.Signer)
	if err != nil {
		t.Fatal(err)
	}
	srv.PublishRole("widget", forged)
	c.fails(3, "key not trusted", "explain", "widget@1.0")
	c.fails(3, "key not trusted", "get", "widget@1.0", "-o", t.TempDir())
}

func TestExplainClaimedProject(t *testing.T) {
	srv := clienttest.New(t)
	c := newCLI(t)
	c.ok("init", "--server", srv.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(srv.Root())))
	k := clienttest.NewKey(t)
	role := client.NewProjectRole(time.Now())
	role.Signed.Version = 1
	raw, err := client.SignRole(role, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddProject("solid", []*metadata.Key{k.Public}, 1, true, raw)
	sum := srv.PutBlob([]byte("solid"))
	next, err := client.NextProjectRole(role, "solid", "3.0", []api.File{{Name: "solid-3.0.tar.gz", Length: 5, SHA256: sum}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	next.ClearSignatures()
	raw, err = client.SignRole(next, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	srv.PublishRole("solid", raw)
	out := c.ok("explain", "solid")
	for _, want := range []string{"claimed  version", "offline admin keys (keys named by targets", "keys named by claimed, for paths solid/*/*", "solid is claimed (delegated by claimed): claimed: the repository admins' offline keys"} {
		if !strings.Contains(out, want) {
			t.Fatalf("explain of a claimed project does not say %q:\n%s", want, out)
		}
	}
}
