package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestMirrorCarriesTransparencyLog: a server logging to a (fake, in-process) Rekor v2 log;
// the bundle carries the entries of its timestamp and snapshot, which verify offline
// against the bundle's bytes and keys, and with the log's key against its checkpoints.
func TestMirrorCarriesTransparencyLog(t *testing.T) {
	rk := rekortest.NewFake(t)
	other := rekortest.NewFake(t)
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "rekor.pub", string(rk.PublicPEM))
	otherKey := writeFile(t, dir, "other.pub", string(other.PublicPEM))
	u, drop, err := testdb.Create("cli_mirror_tlog")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	r := testrepo.Boot(t, u, func(c *daemon.Config) {
		c.RekorURL, c.RekorKey, c.RekorOrigin = rk.URL, keyFile, rk.Origin
		c.RekorTimeout, c.RekorRetryMax = 10*time.Second, time.Second
	})
	c := newCLI(t)
	c.vars["CAIRN_TOKEN"] = r.AdminToken
	rootFile := writeFile(t, t.TempDir(), "root.json", string(r.RootJSON))
	c.ok("init", "--server", r.URL, "--root", rootFile)
	c.ok("key", "generate", "--name", "alice")
	c.ok("project", "create", "widget", "--key", "alice")
	c.ok("upload", "widget", "1.0", writeFile(t, dir, "widget.tar.gz", "one"), "--key", "alice")

	// Wait until the current timestamp and snapshot are logged.
	ts := fetchT(t, r.URL+"/metadata/timestamp.json")
	md, err := metadata.Timestamp().FromBytes(ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fmt.Sprintf("timestamp/%d", md.Signed.Version), fmt.Sprintf("snapshot/%d", md.Signed.Meta["snapshot.json"].Version)} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(r.URL + "/api/v1/log/transparency/" + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not logged within 30s (%d)", p, resp.StatusCode)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	bundle := filepath.Join(dir, "bundle.tar")
	c.ok("mirror", "export", "--project", "widget", "-o", bundle)
	off := newCLI(t)
	var v client.BundleVerification
	if err := json.Unmarshal([]byte(off.ok("mirror", "verify", bundle, "--root", rootFile, "--log-key", keyFile, "--log-origin", rk.Origin, "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.TlogEntries < 2 || !v.TlogCheckpoints {
		t.Fatalf("verify = %+v", v)
	}
	if text := off.ok("mirror", "verify", bundle, "--root", rootFile); !strings.Contains(text, "transparency-log entries (checkpoints not checked: give --log-key)") {
		t.Errorf("verify without the log key:\n%s", text)
	}
	// Another log's key does not verify the checkpoints.
	off.fails(1, "transparency-log entry of", "mirror", "verify", bundle, "--root", rootFile, "--log-key", otherKey)
	// The snapshot's entry put in place of the timestamp's.
	var tsEntry, snapEntry string
	for _, f := range readBundleT(t, bundle).Files {
		if strings.HasPrefix(f.Path, "tlog/timestamp/") {
			tsEntry = f.Path
		}
		if strings.HasPrefix(f.Path, "tlog/snapshot/") {
			snapEntry = f.Path
		}
	}
	bad := filepath.Join(dir, "swapped.tar")
	replaceInBundle(t, bundle, bad, tsEntry, readBundleFile(t, bundle, snapEntry))
	off.fails(4, "holds the entry of snapshot", "mirror", "verify", bad, "--root", rootFile)
	off.fails(10, "--log-origin needs --log-key", "mirror", "verify", bundle, "--root", rootFile, "--log-origin", "x")
}
