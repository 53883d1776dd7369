package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/internal/tufjs"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// shardCapacity is small in these tests so that a few dozen projects make deep trees.
const shardCapacity = 4

// shardWorld is a dev server whose trees split at shardCapacity, with a maintainer and an
// admin CLI.
type shardWorld struct {
	*cliWorld
	key     *testrepo.Key
	files   map[string]testrepo.File // project → its one release file
	version map[string]int64         // project → role version
}

func newShardWorld(t *testing.T, capacity int) *shardWorld {
	t.Helper()
	u, drop, err := testdb.Create("e2e_" + strings.ToLower(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.ShardCapacity = capacity })
	return &shardWorld{cliWorld: &cliWorld{r: r, rootFile: r.Dir + "/root.json", keyIDs: map[string]string{}},
		key: testrepo.NewKey(t, tufrepo.KeyEd25519), files: map[string]testrepo.File{}, version: map[string]int64{}}
}

// addProjects creates each project with one release.
func (w *shardWorld) addProjects(t *testing.T, names ...string) {
	t.Helper()
	exp := time.Now().Add(30 * 24 * time.Hour)
	for _, n := range names {
		w.r.CreateProject(t, w.r.AdminToken, n, 1, []*testrepo.Key{w.key}, w.key)
		f := testrepo.File{Path: n + "/1.0/" + n + ".tgz", Content: []byte("release of " + n)}
		w.r.PutBlob(t, w.r.AdminToken, f.Content)
		if resp := w.r.Submit(t, w.r.AdminToken, n, testrepo.Sign(t, testrepo.Role(2, exp, f), w.key)); resp.Status != http.StatusCreated {
			t.Fatalf("release of %s: %d %s", n, resp.Status, resp.Body)
		}
		w.files[n], w.version[n] = f, 2
	}
}

// nodes returns the nodes of tree in the database, by role.
func (w *shardWorld) nodes(t *testing.T, tree string) map[string]string {
	t.Helper()
	rows, err := w.r.DB.Pool.Query(context.Background(), `SELECT role, prefix FROM shards WHERE tree = $1`, tree)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var role, prefix string
		if err := rows.Scan(&role, &prefix); err != nil {
			t.Fatal(err)
		}
		out[role] = prefix
	}
	return out
}

// checkNodes checks that every published node of tree delegates at most capacity roles
// (plus the one project named exactly its prefix), and returns how many there are.
func (w *shardWorld) checkNodes(t *testing.T, tree string, capacity int) int {
	t.Helper()
	nodes := w.nodes(t, tree)
	for role := range nodes {
		md, err := metadata.Targets().FromBytes(latestRole(t, w.r, role))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(md.Signed.Delegations.Roles); n > capacity+1 {
			t.Errorf("%s delegates %d roles, capacity %d", role, n, capacity)
		}
	}
	return len(nodes)
}

func (w *shardWorld) fetchAll(t *testing.T, cs []client, names ...string) {
	t.Helper()
	for _, c := range cs {
		for _, n := range names {
			f := w.files[n]
			got, err := c.get(t, f.Path)
			if err != nil || string(got) != string(f.Content) {
				t.Fatalf("%s: %s: %v %q", c.name, f.Path, err, got)
			}
		}
	}
}

// shardNames split into a deep tree at shardCapacity: every prefix has groups of names
// that share the next character, so each node can be split down to the capacity.
var shardNames = func() []string {
	var out []string
	for _, p := range []string{"aa", "ab", "b", "python-", "python-d"} {
		for _, s := range []string{"00", "01", "10", "11"} {
			out = append(out, p+s)
		}
	}
	return append(out, "a", "ab", "python")
}()

// TestShardedTreesWithEveryClient: go-tuf, tuf-js and cairn get download releases from a
// repository whose trees split, before and after a split and a claim, each client keeping
// its cache throughout; the claim signs only the claimed nodes it changes.
func TestShardedTreesWithEveryClient(t *testing.T) {
	w := newShardWorld(t, shardCapacity)
	w.addProjects(t, shardNames[:2]...)
	if n := w.checkNodes(t, tufrepo.RoleRecentlyClaimed, shardCapacity); n != 1 {
		t.Fatalf("recently-claimed split with two projects: %d nodes", n)
	}
	cs := clients(t, w.r)
	w.fetchAll(t, cs, shardNames[:2]...)

	rest := shardNames[2:]
	w.addProjects(t, rest...)
	if n := w.checkNodes(t, tufrepo.RoleRecentlyClaimed, shardCapacity); n < 6 {
		t.Fatalf("recently-claimed did not split: %d nodes for %d projects", n, len(shardNames))
	}
	w.fetchAll(t, cs, shardNames...)

	// The admins claim every project: claimed splits too, and every node is offline-signed.
	admin := w.admin(t)
	admin.ok(t, "admin", "claim", "--key", "claimed", "--all", "--shard-capacity", fmt.Sprint(shardCapacity), "--yes")
	if n := w.checkNodes(t, tufrepo.RoleClaimed, shardCapacity); n < 6 {
		t.Fatalf("claimed did not split: %d nodes", n)
	}
	w.fetchAll(t, cs, shardNames...)

	// The explanation of a deep project names every node on its path.
	e := explainJSON(t, w.downloader(t), "python-d10@1.0")
	var chain []string
	for _, l := range e.Chain {
		chain = append(chain, l.Role)
	}
	if !e.Claimed || !strings.Contains(strings.Join(chain, " "), "claimed _claimed.p") || e.Chain[len(e.Chain)-2].Role != e.Delegator || !strings.HasPrefix(e.Delegator, "_claimed.python-") {
		t.Fatalf("explain python-d10: delegator %s chain %v", e.Delegator, chain)
	}
	for _, l := range e.Chain[4 : len(e.Chain)-1] {
		if l.KeyHolder != "offline admin keys" || len(signedKeys(l)) == 0 {
			t.Fatalf("claimed node %s: %+v", l.Role, l)
		}
	}

	// One more project, claimed alone: only the nodes on its path are signed.
	w.addProjects(t, "zz-late")
	var rep struct {
		Result api.ClaimResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(admin.ok(t, "admin", "claim", "--key", "claimed", "--project", "zz-late", "--shard-capacity", fmt.Sprint(shardCapacity), "--yes", "--output", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Result.Nodes) != 1 || len(rep.Result.Moved) != 1 {
		t.Fatalf("claiming one project into a node with room signed %v", rep.Result.Nodes)
	}
	w.fetchAll(t, cs, "zz-late", shardNames[0])
}

// TestClaimedShardSurvivesServerCompromise: a project claimed into a shard of the claimed
// tree keeps its guarantee. The attacker holds the database and every online key: they
// re-delegate the project to their own key through the recently-claimed tree and publish a
// role version with a release the maintainers never signed. Clients search claimed first,
// find the project in its offline-signed shard (terminating), and refuse the forgery.
func TestClaimedShardSurvivesServerCompromise(t *testing.T) {
	w := newShardWorld(t, shardCapacity)
	w.addProjects(t, shardNames...)
	w.admin(t).ok(t, "admin", "claim", "--key", "claimed", "--all", "--shard-capacity", fmt.Sprint(shardCapacity), "--yes")
	var shard string
	if err := w.r.DB.Pool.QueryRow(context.Background(), `SELECT shard FROM projects WHERE name = 'python-d10'`).Scan(&shard); err != nil || !strings.HasPrefix(shard, "_claimed.") {
		t.Fatalf("python-d10 is delegated by %q (%v), not a claimed shard", shard, err)
	}
	cs := clients(t, w.r)
	w.fetchAll(t, cs, "python-d10")

	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	evil := testrepo.File{Path: "python-d10/6.6.6/evil.tgz", Content: []byte("malware")}
	w.r.PutBlob(t, w.r.AdminToken, evil.Content)
	forgeRole(t, w.r, "python-d10", testrepo.Role(w.version["python-d10"]+1, time.Now().Add(24*time.Hour), w.files["python-d10"], evil), mallory)
	// The attack is published: a recently-claimed node now delegates the project to the
	// attacker's key.
	var node string
	if err := w.r.DB.Pool.QueryRow(context.Background(), `SELECT shard FROM projects WHERE name = 'python-d10'`).Scan(&node); err != nil || !strings.HasPrefix(node, "recently-claimed") && !strings.HasPrefix(node, "_recently-claimed.") {
		t.Fatalf("the attack did not route python-d10 into recently-claimed: %q %v", node, err)
	}
	rc, err := metadata.Targets().FromBytes(latestRole(t, w.r, node))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rc.Signed.Delegations.Roles {
		found = found || r.Name == "python-d10" && r.KeyIDs[0] == mallory.ID()
	}
	if !found {
		t.Fatalf("%s does not delegate python-d10 to the attacker", node)
	}
	for _, c := range cs {
		checkRefused(t, c, evil.Path, refusal{isUnsigned, tufjs.ExitSignature, 3})
	}
	// A new client, with no cache, is not fooled either.
	for _, c := range clients(t, w.r) {
		checkRefused(t, c, evil.Path, refusal{isUnsigned, tufjs.ExitSignature, 3})
	}
}

// TestMigrationToShardedLayout: a repository made before sharding (every project in the
// top of its tree) moves to the sharded layout with no new root and no re-pin: the
// publisher splits recently-claimed at its first publish after the upgrade, and one
// offline `cairn admin claim --reshard` splits claimed. go-tuf, tuf-js and cairn get
// clients that cached the old layout follow it.
func TestMigrationToShardedLayout(t *testing.T) {
	w := newShardWorld(t, tufrepo.MaxShardDelegations)
	w.addProjects(t, shardNames...)
	// The old `cairn admin claim` wrote one claimed that delegated every claimed project.
	claim(t, w.r, shardNames[:15]...)
	if n, m := len(w.nodes(t, tufrepo.RoleClaimed)), len(w.nodes(t, tufrepo.RoleRecentlyClaimed)); n != 1 || m != 1 {
		t.Fatalf("the old layout has %d claimed and %d recently-claimed nodes", n, m)
	}
	cs := clients(t, w.r)
	w.fetchAll(t, cs, shardNames...)

	// The upgrade: the same data directory and database, the same address, the default
	// layout rules.
	u, err := url.Parse(w.r.URL)
	if err != nil {
		t.Fatal(err)
	}
	dir, dbURL := w.r.Dir, w.r.Config.DatabaseURL
	if err := w.r.Close(); err != nil {
		t.Fatal(err)
	}
	w.r = testrepo.Boot(t, dbURL, func(c *daemon.Config) { c.Listen, c.DataDir, c.ShardCapacity = u.Host, dir, shardCapacity })
	w.addProjects(t, "after-upgrade")
	if n := w.checkNodes(t, tufrepo.RoleRecentlyClaimed, shardCapacity); n < 3 {
		t.Fatalf("recently-claimed was not split after the upgrade: %d nodes", n)
	}
	w.fetchAll(t, cs, shardNames...)

	w.admin(t).ok(t, "admin", "claim", "--key", "claimed", "--reshard", "--shard-capacity", fmt.Sprint(shardCapacity), "--yes")
	if n := w.checkNodes(t, tufrepo.RoleClaimed, shardCapacity); n < 3 {
		t.Fatalf("claimed was not split by --reshard: %d nodes", n)
	}
	w.fetchAll(t, cs, shardNames...)
	w.fetchAll(t, cs, "after-upgrade")
}
