package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// projectServer fronts the fake TUF server with the REST routes of maintainer changes:
// GET /api/v1/projects/{name} answers Project (which a test may make lie) and POST
// …/maintainers records the documents and answers Answer.
type projectServer struct {
	URL string

	mu      sync.Mutex
	Project api.Project
	Answer  api.MaintainerChangeResult
	// Refuse, when set, is the answer to every posted change.
	Refuse error
	posted [][]byte
}

func newProjectServer(t *testing.T, srv *clienttest.Server) *projectServer {
	t.Helper()
	ps := &projectServer{}
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/projects/") && strings.Count(r.URL.Path, "/") == 4:
			ps.mu.Lock()
			defer ps.mu.Unlock()
			writeTestJSON(w, http.StatusOK, ps.Project)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/maintainers"):
			b, _ := io.ReadAll(r.Body)
			ps.mu.Lock()
			defer ps.mu.Unlock()
			ps.posted = append(ps.posted, b)
			if ps.Refuse != nil {
				w.Header().Set("Content-Type", api.MediaProblem)
				w.WriteHeader(http.StatusConflict)
				json.NewEncoder(w).Encode(api.ProblemFor(ps.Refuse))
				return
			}
			writeTestJSON(w, http.StatusAccepted, ps.Answer)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(hs.Close)
	ps.URL = hs.URL
	return ps
}

func (ps *projectServer) Posted() [][]byte {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([][]byte(nil), ps.posted...)
}

// maintainerWorld: project gadget maintained by alice and bob (threshold 1, role signed
// by alice), published by the fake and reached through a projectServer that answers
// honestly until a test edits it. carol is a third key in the same key store.
func maintainerWorld(t *testing.T, threshold int) (*clienttest.Server, *projectServer, *cli, map[string]*metadata.Key) {
	t.Helper()
	srv := clienttest.New(t)
	ps := newProjectServer(t, srv)
	c := newCLI(t)
	c.vars["CAIRN_TOKEN"] = srv.Token
	c.ok("init", "--server", ps.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(srv.Root())))
	keys := map[string]*metadata.Key{}
	for _, n := range []string{"alice", "bob", "carol"} {
		c.ok("key", "generate", "--name", n)
		var pub api.Key
		if err := json.Unmarshal([]byte(c.ok("key", "export", "--public", n)), &pub); err != nil {
			t.Fatal(err)
		}
		k, err := tufrepo.KeyFromAPI(pub)
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = k
	}
	alice, _ := cliKey(t, c, "alice")
	signers := []signature.Signer{alice}
	if threshold == 2 {
		bob, _ := cliKey(t, c, "bob")
		signers = append(signers, bob)
	}
	raw, err := client.SignRole(client.NewProjectRole(time.Now()), signers...)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddProject("gadget", []*metadata.Key{keys["alice"], keys["bob"]}, threshold, false, raw)
	ps.Project = api.Project{Name: "gadget", Delegator: tufrepo.RoleRecentlyClaimed, Threshold: threshold, Delegated: true, DelegationVersion: 3}
	for _, n := range []string{"alice", "bob"} {
		k := keys[n]
		ps.Project.Maintainers = append(ps.Project.Maintainers, api.Maintainer{KeyID: tufrepo.KeyID(k), KeyType: k.Type, Scheme: k.Scheme, Public: k.Value.PublicKey})
	}
	ps.Answer = api.MaintainerChangeResult{Project: "gadget", Version: 4, Status: "queued", Signatures: 1, Threshold: 1}
	return srv, ps, c, keys
}

func TestMaintainerChangeGuardRailsWriteNothing(t *testing.T) {
	_, ps, c, keys := maintainerWorld(t, 1)
	alice, carol := tufrepo.KeyID(keys["alice"]), tufrepo.KeyID(keys["carol"])
	cases := []struct {
		code int
		want string
		args []string
	}{
		{10, "already a maintainer key", []string{"maintainer", "add", "gadget", "bob", "--key", "alice"}},
		{20, "not a maintainer key of gadget", []string{"maintainer", "remove", "gadget", carol, "--key", "alice"}},
		{20, "not a maintainer key of gadget", []string{"maintainer", "remove", "gadget", "carol", "--key", "alice"}},
		{20, "is not a maintainer key of gadget", []string{"maintainer", "remove", "gadget", "SHA256:00", "--key", "alice"}},
		{10, "threshold 4 is not possible with 3", []string{"maintainer", "add", "gadget", "carol", "--key", "alice", "--threshold", "4"}},
		{10, "threshold 3 is not possible with 2", []string{"project", "threshold", "gadget", "3", "--key", "alice"}},
		{10, "threshold 0 is not possible", []string{"project", "threshold", "gadget", "0", "--key", "alice"}},
		{10, "is not a whole number", []string{"project", "threshold", "gadget", "two", "--key", "alice"}},
		{10, "already 1", []string{"project", "threshold", "gadget", "1", "--key", "alice"}},
		{3, "is not a maintainer key of gadget", []string{"maintainer", "add", "gadget", "carol", "--key", "carol"}},
		{2, "cairn project resign gadget --key alice --key KEY", []string{"project", "threshold", "gadget", "2", "--key", "alice"}},
		{2, "first publish a role version signed by 1 of the keys that stay", []string{"maintainer", "remove", "gadget", alice, "--key", "alice"}},
		{10, "--output must be", []string{"maintainer", "add", "gadget", "carol", "--key", "alice", "--output", "yaml"}},
		{10, "not normalised", []string{"maintainer", "add", "Gadget", "carol", "--key", "alice"}},
	}
	for _, tc := range cases {
		c.fails(tc.code, tc.want, tc.args...)
	}
	// A dry run shows the change and writes nothing.
	out := c.ok("maintainer", "add", "gadget", "carol", "--key", "alice", "--dry-run")
	if !strings.Contains(out, "ADDS maintainer key "+carol) || !strings.Contains(out, "Dry run") {
		t.Fatalf("dry run: %s", out)
	}
	if p := ps.Posted(); len(p) != 0 {
		t.Fatalf("a refused change or dry run posted %d documents", len(p))
	}
}

func TestMaintainerAddPostsAValidDocument(t *testing.T) {
	_, ps, c, keys := maintainerWorld(t, 1)
	out := c.ok("maintainer", "add", "gadget", "carol", "--key", "alice")
	for _, want := range []string{"Maintainer change 4 of gadget", "ADDS maintainer key " + tufrepo.KeyID(keys["carol"]), "keeps the threshold at 1", "Queued for the admins"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output does not say %q:\n%s", want, out)
		}
	}
	posted := ps.Posted()
	if len(posted) != 1 {
		t.Fatalf("posted %d documents", len(posted))
	}
	cur := tufrepo.ProjectDelegation{Name: "gadget", Keys: map[string]*metadata.Key{}, Threshold: 1}
	for _, n := range []string{"alice", "bob"} {
		id := tufrepo.KeyID(keys[n])
		cur.Keys[id] = keys[n]
		cur.KeyIDs = append(cur.KeyIDs, id)
	}
	acc, err := tufrepo.ValidateMaintainerChange(posted[0], cur, 3, time.Now())
	if err != nil || acc.New.Threshold != 1 || len(acc.New.KeyIDs) != 3 || acc.Doc.Version != 4 || !acc.Complete() {
		t.Fatalf("the posted document does not pass the server's validation: %v %+v", err, acc)
	}
	if acc.Doc.Expires.After(time.Now().Add(8*24*time.Hour)) || acc.Doc.Expires.Before(time.Now().Add(6*24*time.Hour)) {
		t.Fatalf("expires %s, want in 7 days", acc.Doc.Expires)
	}

	// JSON output carries the change and the answer; bob is found by key ID prefix.
	ps.mu.Lock()
	ps.Answer = api.MaintainerChangeResult{Project: "gadget", Version: 4, Status: api.StatusPending, Signatures: 1, Threshold: 2}
	ps.mu.Unlock()
	var rep changeReport
	if err := json.Unmarshal([]byte(c.ok("maintainer", "remove", "gadget", tufrepo.KeyID(keys["bob"])[:10], "--key", "alice", "--output", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result == nil || rep.Result.Status != api.StatusPending || len(rep.Change.Removed) != 1 || rep.Change.Removed[0].KeyID != tufrepo.KeyID(keys["bob"]) || rep.Change.Version != 4 {
		t.Fatalf("json: %+v", rep)
	}
	if !strings.Contains(describeChangeResult("gadget", *rep.Result, 0), "cairn sign gadget") {
		t.Fatal("a pending change does not point at cairn sign")
	}
}

func TestMaintainerChangeRefusesAServerThatDisagreesWithTUF(t *testing.T) {
	_, ps, c, keys := maintainerWorld(t, 1)
	mallory := clienttest.NewKey(t)
	ps.mu.Lock()
	ps.Project.Maintainers = append(ps.Project.Maintainers, api.Maintainer{KeyID: mallory.ID, Public: mallory.Public.Value.PublicKey})
	ps.mu.Unlock()
	c.fails(4, "disagrees with the TUF metadata", "maintainer", "add", "gadget", "carol", "--key", "alice")
	ps.mu.Lock()
	ps.Project.Maintainers = ps.Project.Maintainers[:2]
	ps.Project.Delegator = tufrepo.RoleClaimed
	ps.mu.Unlock()
	c.fails(4, "the server says claimed delegates to it", "maintainer", "add", "gadget", "carol", "--key", "alice")
	ps.mu.Lock()
	ps.Project.Delegator = tufrepo.RoleRecentlyClaimed
	ps.Project.Delegated = false
	ps.mu.Unlock()
	c.fails(4, "not yet published", "project", "threshold", "gadget", "2", "--key", "alice")
	if p := ps.Posted(); len(p) != 0 {
		t.Fatalf("posted %d documents to a server that disagrees with TUF", len(p))
	}
	_ = keys
}

func TestMaintainerList(t *testing.T) {
	_, _, c, keys := maintainerWorld(t, 1)
	var l struct {
		Delegator string           `json:"delegator"`
		Claimed   bool             `json:"claimed"`
		Threshold int              `json:"threshold"`
		Keys      []client.KeyView `json:"keys"`
	}
	if err := json.Unmarshal([]byte(c.ok("maintainer", "list", "gadget", "--output", "json")), &l); err != nil {
		t.Fatal(err)
	}
	if l.Delegator != tufrepo.RoleRecentlyClaimed || l.Claimed || l.Threshold != 1 || len(l.Keys) != 2 {
		t.Fatalf("list: %+v", l)
	}
	out := c.ok("maintainer", "list", "gadget")
	if !strings.Contains(out, tufrepo.KeyID(keys["alice"])) || !strings.Contains(out, "1 of these 2 maintainer keys") {
		t.Fatalf("list: %s", out)
	}
}

func TestMaintainerRemoveAtThresholdTwo(t *testing.T) {
	_, ps, c, _ := maintainerWorld(t, 2)
	c.fails(10, "lower the threshold in the same change with --threshold 1", "maintainer", "remove", "gadget", "bob", "--key", "alice", "--key", "bob")
	if len(ps.Posted()) != 0 {
		t.Fatal("a refused change was posted")
	}
	ps.mu.Lock()
	ps.Answer = api.MaintainerChangeResult{Project: "gadget", Version: 4, Status: "applied", Signatures: 2, Threshold: 2}
	ps.mu.Unlock()
	out := c.ok("maintainer", "remove", "gadget", "bob", "--key", "alice", "--key", "bob", "--threshold", "1")
	if !strings.Contains(out, "REMOVES maintainer key") || !strings.Contains(out, "CHANGES the threshold from 2 to 1") || !strings.Contains(out, "Applied") {
		t.Fatalf("remove: %s", out)
	}
	if len(ps.Posted()) != 1 {
		t.Fatal("nothing posted")
	}
}

// A claimed project with a change already queued: the server refuses a change built on
// the published keys, and the user is told plainly why and what to do.
func TestMaintainerChangeWhileAChangeIsQueued(t *testing.T) {
	srv, ps, c, keys := maintainerWorld(t, 1)
	_, raw, _ := srv.Project("gadget")
	srv.AddProject("gadget", []*metadata.Key{keys["alice"], keys["bob"]}, 1, true, raw)
	ps.mu.Lock()
	ps.Project.Delegator = tufrepo.RoleClaimed
	ps.Refuse = api.Errorf(api.CodeVersionConflict, `project "gadget"'s maintainers are at version 4, so the change must be version 5, not 4`)
	ps.mu.Unlock()
	r := c.fails(4, "a maintainer change of gadget is already queued for the admins", "maintainer", "add", "gadget", "carol", "--key", "alice")
	for _, want := range []string{"maintainer change 4, built on the keys clients verify now", "must build on the queued one", "cairn admin claim", "so the change must be version 5, not 4"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal does not say %q: %s", want, r.stderr)
		}
	}
	// Other refusals pass unchanged.
	ps.mu.Lock()
	ps.Refuse = api.Errorf(api.CodeSignatureInvalid, "the signature by key x does not verify")
	ps.mu.Unlock()
	if r := c.fails(2, "does not verify", "maintainer", "add", "gadget", "carol", "--key", "alice"); strings.Contains(r.stderr, "queued") {
		t.Errorf("an unrelated refusal mentions the queue: %s", r.stderr)
	}
}
