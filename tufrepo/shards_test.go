package tufrepo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

func TestShardRoleNames(t *testing.T) {
	for _, tc := range []struct {
		tree, prefix, role string
	}{
		{RoleClaimed, "", "claimed"},
		{RoleRecentlyClaimed, "", "recently-claimed"},
		{RoleClaimed, "ab", "_claimed.ab"},
		{RoleRecentlyClaimed, "python-", "_recently-claimed.python-"},
		{RoleClaimed, "a.", "_claimed.a."},
	} {
		if got := ShardRole(tc.tree, tc.prefix); got != tc.role {
			t.Errorf("ShardRole(%q, %q) = %q, want %q", tc.tree, tc.prefix, got, tc.role)
		}
		tree, prefix, ok := ParseShardRole(tc.role)
		if !ok || tree != tc.tree || prefix != tc.prefix {
			t.Errorf("ParseShardRole(%q) = %q, %q, %v", tc.role, tree, prefix, ok)
		}
		// No project can take a shard's name.
		if tc.prefix != "" && ValidateProjectName(tc.role) == nil {
			t.Errorf("shard role %q is a valid project name", tc.role)
		}
	}
	for _, role := range []string{"targets", "demo", "_claimed.", "_other.ab", "claimed.ab", "_recently-claimed"} {
		if _, _, ok := ParseShardRole(role); ok {
			t.Errorf("ParseShardRole(%q) accepted a role that is not a node", role)
		}
	}
}

func mustLayout(t *testing.T, prefixes ...string) *ShardLayout {
	t.Helper()
	l, err := NewShardLayout(RoleRecentlyClaimed, prefixes...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestShardLayoutRoute(t *testing.T) {
	l := mustLayout(t, "python-", "a", "ab", "python-d", "p")
	for _, tc := range []struct {
		project, node string
		path          []string
	}{
		{"zed", "", []string{"recently-claimed"}},
		{"a", "a", []string{"recently-claimed", "_recently-claimed.a"}},
		{"abc", "ab", []string{"recently-claimed", "_recently-claimed.a", "_recently-claimed.ab"}},
		{"ab", "ab", []string{"recently-claimed", "_recently-claimed.a", "_recently-claimed.ab"}},
		{"ac", "a", []string{"recently-claimed", "_recently-claimed.a"}},
		{"python", "p", []string{"recently-claimed", "_recently-claimed.p"}},
		{"python-dateutil", "python-d", []string{"recently-claimed", "_recently-claimed.p", "_recently-claimed.python-", "_recently-claimed.python-d"}},
		{"python-x", "python-", []string{"recently-claimed", "_recently-claimed.p", "_recently-claimed.python-"}},
	} {
		if got := l.Route(tc.project); got != tc.node {
			t.Errorf("Route(%q) = %q, want %q", tc.project, got, tc.node)
		}
		if got := l.Path(tc.project); !slices.Equal(got, tc.path) {
			t.Errorf("Path(%q) = %v, want %v", tc.project, got, tc.path)
		}
	}
	// "p" was added after "python-", which it adopted.
	if got := l.Children(""); !slices.Equal(got, []string{"a", "p"}) {
		t.Errorf("children of the top: %v", got)
	}
	if got := l.Children("p"); !slices.Equal(got, []string{"python-"}) {
		t.Errorf("children of p: %v", got)
	}
	for _, bad := range []string{"A", "-a", "a/b", "a*", strings.Repeat("a", 65)} {
		if err := l.Clone().Add(bad); err == nil {
			t.Errorf("Add(%q) accepted a prefix no project name starts with", bad)
		}
	}
}

// names returns a mix of every name shape: single characters, exact prefixes of others,
// '.', '-' and '_', long shared prefixes, and 64-character names.
func shardTestNames(r *rand.Rand, n int) []string {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
	const rest = alpha + "._-"
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] && ValidateProjectName(s) == nil {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range []string{"a", "b", "ab", "abc", "python", "python-", "python-dateutil", "python-d", "django", "django-rest", "x.y", "x_y", "x-y", "0", "9lives", strings.Repeat("z", 64), strings.Repeat("z", 63)} {
		add(s)
	}
	for len(out) < n {
		var b strings.Builder
		switch r.IntN(4) {
		case 0:
			b.WriteString("python-")
		case 1:
			b.WriteString("django-")
		}
		b.WriteByte(alpha[r.IntN(len(alpha))])
		for range r.IntN(12) {
			b.WriteByte(rest[r.IntN(len(rest))])
		}
		add(b.String())
	}
	return out
}

func TestShardLayoutSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, capacity := range []int{2, 4, 8, 64} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			names := shardTestNames(r, 3000)
			l := mustLayout(t)
			// Projects arrive in batches; after each, the nodes that grew are split.
			for start := 0; start < len(names); start += 97 {
				batch := names[:min(len(names), start+97)]
				byNode := map[string][]string{}
				for _, n := range batch {
					byNode[l.Route(n)] = append(byNode[l.Route(n)], n)
				}
				for _, node := range slices.Sorted(func(yield func(string) bool) {
					for k := range byNode {
						if !yield(k) {
							return
						}
					}
				}) {
					if len(l.Children(node))+len(byNode[node]) > capacity {
						before := l.Len()
						added := l.Split(node, byNode[node], capacity)
						if l.Len() != before+len(added) {
							t.Fatalf("Split reported %d nodes but added %d", len(added), l.Len()-before)
						}
						for i, p := range added {
							if !strings.HasPrefix(p, node) || p == node {
								t.Fatalf("Split(%q) added %q", node, p)
							}
							if par := l.Parent(p); i > 0 && slices.Index(added, par) > i {
								t.Fatalf("Split added %q before its parent %q", p, par)
							}
						}
					}
				}
			}
			// Every node is within capacity, routes are consistent, and children of one
			// node never overlap.
			byNode := map[string]int{}
			sharedNext := map[string]bool{}
			next := map[string]bool{}
			for _, n := range names {
				node := l.Route(n)
				if len(n) > len(node) {
					k := node + "\x00" + n[len(node):len(node)+1]
					sharedNext[node] = sharedNext[node] || next[k]
					next[k] = true
				}
				if !strings.HasPrefix(n, node) {
					t.Fatalf("%q routed to %q", n, node)
				}
				for _, c := range l.Children(node) {
					if strings.HasPrefix(n, c) {
						t.Fatalf("%q routed to %q although child %q covers it", n, node, c)
					}
				}
				byNode[node]++
			}
			for _, p := range l.Prefixes() {
				ch := l.Children(p)
				// A node may exceed a capacity below the alphabet's size only if no two of
				// its projects share the next character (no shard could take two of them).
				if n := len(ch) + byNode[p]; n > capacity && sharedNext[p] {
					t.Errorf("node %q delegates %d entries (%d projects), capacity %d", p, n, byNode[p], capacity)
				}
				nexts := map[byte]bool{}
				for _, c := range ch {
					if nexts[c[len(p)]] {
						t.Errorf("node %q has two children starting with %q", p, c[len(p)])
					}
					nexts[c[len(p)]] = true
				}
			}
			t.Logf("capacity %d: %d names in %d nodes", capacity, len(names), l.Len())
		})
	}
}

// memRepo is a complete repository in memory: the real ceremony's root, targets and
// claimed top, both trees of shards, a project role per project and snapshot and timestamp
// over all of them, served to go-tuf's updater through a fetcher.
type memRepo struct {
	files map[string][]byte // URL path under /metadata/ or /targets/ → bytes
	root  []byte
}

func (m *memRepo) DownloadFile(u string, maxLength int64, _ time.Duration) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	b, ok := m.files[strings.TrimPrefix(pu.Path, "/")]
	if !ok {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: u}
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: "too long"}
	}
	return b, nil
}

// buildMemRepo builds both trees for the projects (claimed ones in claimed) with the
// given capacity, each project role listing one target "<project>/1.0/<project>.tgz".
func buildMemRepo(t *testing.T, r *testRepo, claimedNames, rcNames []string, capacity int) (*memRepo, map[string]*ShardLayout) {
	t.Helper()
	ctx := context.Background()
	exp := r.Now.Add(30 * 24 * time.Hour)
	m := &memRepo{files: map[string][]byte{}, root: r.Off.Root}
	idx := &SnapshotIndex{}
	put := func(role string, version int64, raw []byte) {
		m.files["metadata/"+VersionedName(role, version)] = raw
		idx.Set(role, version, int64(len(raw)))
	}
	m.files["metadata/1.root.json"] = r.Off.Root
	put(RoleTargets, 1, r.Off.Targets)
	maint := newTestSigner(t, KeyEd25519)
	layouts := map[string]*ShardLayout{}
	for _, tree := range []struct {
		name    string
		names   []string
		keys    ShardKeys
		signers []*OnlineSigner
	}{
		{RoleClaimed, claimedNames, ShardKeys{Keys: keysOf(r.Claimed), KeyIDs: idsOf(r.Claimed), Threshold: 2}, r.Claimed},
		{RoleRecentlyClaimed, rcNames, ShardKeys{Keys: keysOf([]*OnlineSigner{r.Online.RecentlyClaimed}), KeyIDs: idsOf([]*OnlineSigner{r.Online.RecentlyClaimed}), Threshold: 1}, []*OnlineSigner{r.Online.RecentlyClaimed}},
	} {
		l, _ := NewShardLayout(tree.name)
		l.Split("", tree.names, capacity)
		layouts[tree.name] = l
		direct := map[string][]ProjectDelegation{}
		for _, n := range tree.names {
			direct[l.Route(n)] = append(direct[l.Route(n)], ProjectDelegation{Name: n, Keys: map[string]*metadata.Key{maint.KeyID: maint.Key}, KeyIDs: []string{maint.KeyID}, Threshold: 1})
		}
		for _, p := range l.Prefixes() {
			n := ShardNode{Tree: tree.name, Prefix: p, Children: l.Children(p), Projects: direct[p]}
			signed, err := BuildShardNode(2, exp, tree.keys, n)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := SignEnvelope(ctx, signed, tree.signers...)
			if err != nil {
				t.Fatal(err)
			}
			put(n.Role(), 2, raw)
		}
		for _, n := range tree.names {
			content := []byte("file of " + n)
			role := newProjectRole(1, exp, map[string]*metadata.TargetFiles{TargetPath(n, "1.0", n+".tgz"): targetFile(content)})
			put(n, 1, signRole(t, role, maint))
			m.files["targets/"+n+"/1.0/"+sha256Hex(content)+"."+n+".tgz"] = content
		}
	}
	snap, err := SignEnvelope(ctx, idx.EncodeSigned(1, exp), r.Online.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	m.files["metadata/1.snapshot.json"] = snap
	ts, err := BuildTimestamp(1, 1, snap, exp)
	if err != nil {
		t.Fatal(err)
	}
	tsRaw, err := SignEnvelope(ctx, ts, r.Online.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	m.files["metadata/timestamp.json"] = tsRaw
	return m, layouts
}

func keysOf(ss []*OnlineSigner) map[string]*metadata.Key {
	out := map[string]*metadata.Key{}
	for _, s := range ss {
		out[s.KeyID] = s.Key
	}
	return out
}

func idsOf(ss []*OnlineSigner) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.KeyID)
	}
	return out
}

// TestShardTreesWithGoTUF builds both trees over names of every shape with a small
// capacity (so the trees are deep), and has go-tuf's updater look up every project's file
// and names that no project has: go-tuf's own delegation walk (glob matching, terminating
// flags, claimed searched before recently-claimed) is the oracle for the layout.
func TestShardTreesWithGoTUF(t *testing.T) {
	r := newTestRepo(t, time.Now())
	names := shardTestNames(rand.New(rand.NewPCG(3, 4)), 150)
	var claimedNames, rcNames []string
	for i, n := range names {
		if i%3 == 0 {
			claimedNames = append(claimedNames, n)
		} else {
			rcNames = append(rcNames, n)
		}
	}
	m, layouts := buildMemRepo(t, r, claimedNames, rcNames, 4)
	if layouts[RoleClaimed].Len() < 10 || layouts[RoleRecentlyClaimed].Len() < 20 {
		t.Fatalf("trees too shallow to test anything: %d and %d nodes", layouts[RoleClaimed].Len(), layouts[RoleRecentlyClaimed].Len())
	}
	newUpdater := func() *updater.Updater {
		cfg, err := config.New("http://repo.test/metadata", m.root)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RemoteTargetsURL = "http://repo.test/targets"
		cfg.LocalMetadataDir = t.TempDir()
		cfg.LocalTargetsDir = t.TempDir()
		cfg.PrefixTargetsWithHash = true
		cfg.Fetcher = m
		cfg.DisableLocalCache = true
		u, err := updater.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Refresh(); err != nil {
			t.Fatal(err)
		}
		return u
	}
	check := func(names []string, tree string) {
		for _, n := range names {
			u := newUpdater()
			path := TargetPath(n, "1.0", n+".tgz")
			ti, err := u.GetTargetInfo(path)
			if err != nil {
				t.Fatalf("go-tuf cannot find %s (project in %s, node %s): %v", path, tree, ShardRole(tree, layouts[tree].Route(n)), err)
			}
			if _, _, err := u.DownloadTarget(ti, "", ""); err != nil {
				t.Fatalf("go-tuf cannot download %s: %v", path, err)
			}
			// go-tuf loaded exactly the nodes on the project's path (plus, for a
			// recently-claimed project, the claimed nodes it searched first).
			loaded := u.GetTrustedMetadataSet().Targets
			for _, role := range layouts[tree].Path(n) {
				if loaded[role] == nil {
					t.Fatalf("%s: go-tuf did not load %s on the way", path, role)
				}
			}
			for role := range loaded {
				if tr, _, ok := ParseShardRole(role); ok && !slices.Contains(layouts[tr].Path(n), role) {
					t.Fatalf("%s: go-tuf loaded %s, which is not on the project's path in %s", path, role, tr)
				}
			}
			// A file the project does not have is not found, in any tree.
			if _, err := newUpdater().GetTargetInfo(TargetPath(n, "9.9", "x")); err == nil {
				t.Fatalf("go-tuf found a file %s never listed", TargetPath(n, "9.9", "x"))
			}
		}
	}
	check(claimedNames, RoleClaimed)
	check(rcNames, RoleRecentlyClaimed)
	for _, n := range []string{"nosuchproject", "pytho", "python-zzzzzz", "zz"} {
		if slices.Contains(names, n) {
			continue
		}
		if _, err := newUpdater().GetTargetInfo(TargetPath(n, "1.0", n+".tgz")); err == nil {
			t.Errorf("go-tuf found a file of a project that does not exist: %s", n)
		}
	}
}

func TestCheckShardNodeRefusals(t *testing.T) {
	r := newTestRepo(t, time.Now())
	keys := ShardKeys{Keys: keysOf(r.Claimed), KeyIDs: idsOf(r.Claimed), Threshold: 2}
	maint := newTestSigner(t, KeyEd25519)
	pd := func(name string) ProjectDelegation {
		return ProjectDelegation{Name: name, Keys: map[string]*metadata.Key{maint.KeyID: maint.Key}, KeyIDs: []string{maint.KeyID}, Threshold: 1}
	}
	l, _ := NewShardLayout(RoleClaimed, "a", "b")
	build := func(n ShardNode, mut func(*metadata.TargetsType)) *metadata.Metadata[metadata.TargetsType] {
		signed, err := BuildShardNode(1, time.Now().Add(time.Hour), keys, n)
		if err != nil {
			t.Fatal(err)
		}
		md, err := metadata.Targets().FromBytes(Envelope(signed, nil))
		if err != nil {
			t.Fatal(err)
		}
		if mut != nil {
			mut(&md.Signed)
		}
		return md
	}
	good := ShardNode{Tree: RoleClaimed, Prefix: "", Children: []string{"a", "b"}, Projects: []ProjectDelegation{pd("c1"), pd("zz")}}
	if c, err := CheckShardNode(build(good, nil), l, "", keys); err != nil || len(c.Projects) != 2 || !slices.Equal(c.Children, []string{"a", "b"}) {
		t.Fatalf("a good node: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		name string
		node ShardNode
		mut  func(*metadata.TargetsType)
		want string
	}{
		{"drops a child", ShardNode{Tree: RoleClaimed, Children: []string{"a"}}, nil, "drops its child shard _claimed.b"},
		{"unknown child", ShardNode{Tree: RoleClaimed, Children: []string{"a", "b", "c"}}, nil, "not one of its child shards"},
		{"project under a child", ShardNode{Tree: RoleClaimed, Children: []string{"a", "b"}, Projects: []ProjectDelegation{pd("ab")}}, nil, "belongs to node _claimed.a"},
		{"wide project pattern", good, func(s *metadata.TargetsType) { s.Delegations.Roles[2].Paths = []string{"*/*/*"} }, "must be exactly"},
		{"project not terminating", good, func(s *metadata.TargetsType) { s.Delegations.Roles[2].Terminating = false }, "without terminating"},
		{"terminating shard", good, func(s *metadata.TargetsType) { s.Delegations.Roles[0].Terminating = true }, "as terminating"},
		{"shard to other keys", good, func(s *metadata.TargetsType) { s.Delegations.Roles[0].KeyIDs = []string{maint.KeyID} }, "every shard of claimed"},
		{"shard pattern too wide", good, func(s *metadata.TargetsType) { s.Delegations.Roles[0].Paths = []string{"*/*/*"} }, "must be exactly"},
		{"hash bins", good, func(s *metadata.TargetsType) {
			s.Delegations.SuccinctRoles = &metadata.SuccinctRoles{BitLength: 4, NamePrefix: "bin"}
		}, "succinct"},
		{"targets of its own", good, func(s *metadata.TargetsType) { s.Targets["c1/1/x"] = targetFile([]byte("x")) }, "may not list targets"},
		{"delegated twice", good, func(s *metadata.TargetsType) {
			s.Delegations.Roles = append(s.Delegations.Roles, s.Delegations.Roles[2])
		}, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckShardNode(build(tc.node, tc.mut), l, "", keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if api.CodeOf(err) == api.CodeInternal {
				t.Fatalf("no wire code: %v", err)
			}
		})
	}
}
