package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// proposalServer puts the proposal endpoints in front of the clienttest fake: role
// submissions with fewer than threshold signatures become proposals, co-signatures are
// added to them, and a complete proposal is published on the fake. Tests may also plant any
// proposal, as a lying server would.
type proposalServer struct {
	t         *testing.T
	srv       *clienttest.Server
	URL       string
	threshold int

	mu        sync.Mutex
	proposals map[int64]api.Proposal
	cosigns   []api.CoSignRequest
}

func newProposalServer(t *testing.T, srv *clienttest.Server, threshold int) *proposalServer {
	ps := &proposalServer{t: t, srv: srv, threshold: threshold, proposals: map[int64]api.Proposal{}}
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/projects/{name}/pending", ps.list)
	mux.HandleFunc("POST /api/v1/projects/{name}/roles", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		md, err := metadata.Targets().FromBytes(raw)
		if err != nil || len(md.Signatures) >= ps.threshold {
			r.Body = io.NopCloser(strings.NewReader(string(raw)))
			r.ContentLength = int64(len(raw))
			proxy.ServeHTTP(w, r)
			return
		}
		p := ps.Plant(r.PathValue("name"), raw)
		writeTestJSON(w, http.StatusAccepted, api.SubmitResult{Project: p.Project, RoleVersion: p.Version, Status: api.StatusPending, Signatures: len(p.SignedBy), Threshold: ps.threshold})
	})
	mux.HandleFunc("POST /api/v1/projects/{name}/pending/{version}/signatures", ps.cosign)
	mux.Handle("/", proxy)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	ps.URL = hs.URL
	return ps
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.MediaJSON)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Plant stores raw as the open proposal for its version, whatever it holds.
func (ps *proposalServer) Plant(project string, raw []byte) api.Proposal {
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		ps.t.Fatal(err)
	}
	p := api.Proposal{Project: project, Kind: api.KindRole, Version: md.Signed.Version, Threshold: ps.threshold, Metadata: raw,
		CreatedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(7 * 24 * time.Hour).UTC()}
	for _, s := range md.Signatures {
		p.SignedBy = append(p.SignedBy, s.KeyID)
	}
	if len(p.SignedBy) > 0 {
		p.ProposedBy = p.SignedBy[0]
	}
	ps.mu.Lock()
	ps.proposals[p.Version] = p
	ps.mu.Unlock()
	return p
}

func (ps *proposalServer) list(w http.ResponseWriter, r *http.Request) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := api.ProposalList{Project: r.PathValue("name"), Proposals: []api.Proposal{}}
	for _, v := range slices.Sorted(func(yield func(int64) bool) {
		for v := range ps.proposals {
			if !yield(v) {
				return
			}
		}
	}) {
		out.Proposals = append(out.Proposals, ps.proposals[v])
	}
	writeTestJSON(w, http.StatusOK, out)
}

func (ps *proposalServer) cosign(w http.ResponseWriter, r *http.Request) {
	var req api.CoSignRequest
	json.NewDecoder(r.Body).Decode(&req)
	v, _ := strconv.ParseInt(r.PathValue("version"), 10, 64)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.cosigns = append(ps.cosigns, req)
	p, ok := ps.proposals[v]
	if !ok {
		writeTestJSON(w, http.StatusNotFound, api.ProblemFor(api.Errorf(api.CodeNotFound, "no proposal")))
		return
	}
	md, _ := metadata.Targets().FromBytes(p.Metadata)
	sig, _ := hex.DecodeString(req.Sig)
	md.Signatures = append(md.Signatures, metadata.Signature{KeyID: req.KeyID, Signature: sig})
	raw, _ := md.ToBytes(false)
	p.Metadata, p.SignedBy = raw, append(p.SignedBy, req.KeyID)
	if len(p.SignedBy) < ps.threshold {
		ps.proposals[v] = p
		writeTestJSON(w, http.StatusAccepted, api.SubmitResult{Project: p.Project, RoleVersion: v, Status: api.StatusPending, Signatures: len(p.SignedBy), Threshold: ps.threshold})
		return
	}
	delete(ps.proposals, v)
	ps.srv.PublishRole(p.Project, raw)
	writeTestJSON(w, http.StatusCreated, api.SubmitResult{Project: p.Project, RoleVersion: v, Status: api.StatusPublished, SnapshotVersion: ps.srv.SnapshotVersion()})
}

func (ps *proposalServer) CoSigns() []api.CoSignRequest {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.cosigns)
}

// cliKey decrypts a key of the CLI's key store.
func cliKey(t *testing.T, c *cli, name string) (signature.Signer, *metadata.Key) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.home, "keys", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := tufrepo.ParseKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kf.Decrypt([]byte(c.vars["CAIRN_KEY_PASSPHRASE"]))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kf.TUFKey()
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// twoOfThree is project "duo" maintained by alice, bob and carol (2 of 3), with release
// 1.0 published, behind a proposalServer; c holds all three keys and dave's.
func twoOfThree(t *testing.T) (*clienttest.Server, *proposalServer, *cli) {
	t.Helper()
	srv := clienttest.New(t)
	ps := newProposalServer(t, srv, 2)
	c := newCLI(t)
	c.vars["CAIRN_TOKEN"] = srv.Token
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		c.ok("key", "generate", "--name", n)
	}
	var keys []*metadata.Key
	var signers []signature.Signer
	for _, n := range []string{"alice", "bob", "carol"} {
		s, k := cliKey(t, c, n)
		keys, signers = append(keys, k), append(signers, s)
	}
	now := time.Now()
	v1 := client.NewProjectRole(now)
	blob := srv.PutBlob([]byte("duo one"))
	v2, err := client.NextProjectRole(v1, "duo", "1.0", []api.File{{Name: "duo-1.0.tar.gz", Length: 7, SHA256: blob}}, now)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := client.SignRole(v2, signers[0], signers[1])
	if err != nil {
		t.Fatal(err)
	}
	srv.AddProject("duo", keys, 2, false, raw)
	c.ok("init", "--server", ps.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(srv.Root())))
	return srv, ps, c
}

func TestSignCoSignsAnUpload(t *testing.T) {
	srv, ps, c := twoOfThree(t)
	out := c.ok("upload", "duo", "2.0", writeFile(t, t.TempDir(), "duo-2.0.tar.gz", "duo two"), "--key", "alice")
	if !strings.Contains(out, "Role version 3 of duo is pending: 1 of 2 maintainer signatures; ask a co-maintainer to run `cairn sign duo`") {
		t.Fatalf("upload = %s", out)
	}
	if v, _, _ := srv.Project("duo"); v != 2 {
		t.Fatalf("a proposal was published: version %d", v)
	}
	c.fails(4, "already signed", "sign", "duo", "--key", "alice", "--yes")
	c.fails(3, "not a maintainer key", "sign", "duo", "--key", "dave", "--yes")
	r := c.fails(10, "--yes", "sign", "duo", "--key", "bob")
	for _, want := range []string{"adds release 2.0 (1 file):", "duo-2.0.tar.gz  7 bytes  sha256 ", "1 of 2 required", `<- your key "bob"`, "<- proposer"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("review lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := len(ps.CoSigns()); n != 0 {
		t.Fatalf("%d signatures posted before confirmation", n)
	}
	out = c.ok("sign", "duo", "--key", "bob", "--yes")
	if !strings.Contains(out, "published in snapshot") {
		t.Fatalf("sign = %s", out)
	}
	if v, _, _ := srv.Project("duo"); v != 3 {
		t.Fatalf("published version %d after co-signing", v)
	}
	var list releaseList
	if err := json.Unmarshal([]byte(c.ok("releases", "duo", "--output", "json")), &list); err != nil || len(list.Releases) != 2 || list.RoleVersion != 3 {
		t.Fatalf("releases after co-signing: %+v %v", list, err)
	}
	var res signOutput
	if err := json.Unmarshal([]byte(c.ok("sign", "duo", "--key", "carol", "--output", "json")), &res); err != nil || len(res.Proposals) != 0 || res.CurrentVersion != 3 || !res.Verified {
		t.Fatalf("sign --output json with nothing pending: %+v %v", res, err)
	}
}

func TestSignRefusesWhatAnHonestServerWouldNotOffer(t *testing.T) {
	srv, ps, c := twoOfThree(t)
	_, v2raw, _ := srv.Project("duo")
	v2, err := metadata.Targets().FromBytes(v2raw)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := cliKey(t, c, "alice")
	dave, _ := cliKey(t, c, "dave")
	next := func(edit func(md *metadata.Metadata[metadata.TargetsType]), signers ...signature.Signer) []byte {
		md, err := client.NextProjectRole(v2, "duo", "2.0", []api.File{{Name: "duo-2.0.tar.gz", Length: 3, SHA256: srv.PutBlob([]byte("two"))}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(md)
		}
		raw, err := client.SignRole(md, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name string
		raw  []byte
		code int
		want string
	}{
		{"changes a published file", next(func(md *metadata.Metadata[metadata.TargetsType]) {
			tf := *md.Signed.Targets["duo/1.0/duo-1.0.tar.gz"]
			tf.Length = 8
			md.Signed.Targets["duo/1.0/duo-1.0.tar.gz"] = &tf
		}, alice), 4, "changes the published file duo/1.0/duo-1.0.tar.gz"},
		{"removes a published file", next(func(md *metadata.Metadata[metadata.TargetsType]) {
			delete(md.Signed.Targets, "duo/1.0/duo-1.0.tar.gz")
		}, alice), 4, "removes the published file"},
		{"is stale", next(func(md *metadata.Metadata[metadata.TargetsType]) { md.Signed.Version = 2 }, alice), 4, "no longer applies"},
		{"skips a version", next(func(md *metadata.Metadata[metadata.TargetsType]) { md.Signed.Version = 5 }, alice), 4, "next version is 3"},
		{"has no maintainer's signature", next(nil, dave), 2, "no maintainer's signature"},
	}
	for _, tt := range tests {
		ps.mu.Lock()
		clear(ps.proposals)
		ps.mu.Unlock()
		ps.Plant("duo", tt.raw)
		r := c.fails(tt.code, tt.want, "sign", "duo", "--key", "bob", "--yes")
		if !strings.Contains(r.stdout, "CANNOT BE SIGNED") {
			t.Errorf("%s: the review does not say it cannot be signed:\n%s", tt.name, r.stdout)
		}
		if n := len(ps.CoSigns()); n != 0 {
			t.Fatalf("%s: a signature was posted", tt.name)
		}
	}

	// Two open proposals: the user must pick one.
	ps.Plant("duo", next(nil, alice))
	ps.Plant("duo", next(func(md *metadata.Metadata[metadata.TargetsType]) { md.Signed.Version = 4 }, alice))
	c.fails(10, "--version", "sign", "duo", "--key", "bob", "--yes")
	c.fails(20, "no open proposal for role version 7", "sign", "duo", "--key", "bob", "--yes", "--version", "7")
	out := c.ok("sign", "duo", "--key", "bob", "--yes", "--version", "3")
	if !strings.Contains(out, "published in snapshot") || len(ps.CoSigns()) != 1 {
		t.Fatalf("sign --version 3: %s", out)
	}
}

func TestDescribeSubmitPending(t *testing.T) {
	got := describeSubmit(api.SubmitResult{Project: "p", RoleVersion: 1, Status: api.StatusPending, Signatures: 1, Threshold: 2})
	if !strings.HasPrefix(got, "Role version 1 of p is pending: 1 of 2 maintainer signatures; ask a co-maintainer to run `cairn sign p`.") {
		t.Fatal(got)
	}
}

func TestSizeAndPlural(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 1: "1 byte", 1023: "1023 bytes", 2048: "2048 bytes (2.0 KiB)", 5 << 20: "5242880 bytes (5.0 MiB)"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}

// changeSignServer puts the REST routes 'cairn sign --kind maintainers' uses in front of
// the clienttest fake: the project record, the open maintainer changes (tests plant any,
// as a lying server would) and co-signatures, checked with the server's own validation; a
// change that reaches the threshold is applied to the fake's delegation and published.
type changeSignServer struct {
	t       *testing.T
	srv     *clienttest.Server
	URL     string
	claimed bool
	roleRaw []byte

	mu        sync.Mutex
	Project   api.Project
	proposals []api.Proposal
	cosigns   []api.CoSignRequest
	// Refuse, when set, is the answer to every co-signature.
	Refuse error
}

func newChangeSignServer(t *testing.T, srv *clienttest.Server, claimed bool, roleRaw []byte) *changeSignServer {
	cs := &changeSignServer{t: t, srv: srv, claimed: claimed, roleRaw: roleRaw}
	target, _ := url.Parse(srv.URL)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/projects/{name}", func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		writeTestJSON(w, http.StatusOK, cs.Project)
	})
	mux.HandleFunc("GET /api/v1/projects/{name}/pending", func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		writeTestJSON(w, http.StatusOK, api.ProposalList{Project: r.PathValue("name"), Proposals: append([]api.Proposal{}, cs.proposals...)})
	})
	mux.HandleFunc("POST /api/v1/projects/{name}/pending/{version}/signatures", cs.cosign)
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	cs.URL = hs.URL
	return cs
}

func problem(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", api.MediaProblem)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ProblemFor(err))
}

// current is the project's delegation as the server holds it.
func (cs *changeSignServer) current() tufrepo.ProjectDelegation {
	d := tufrepo.ProjectDelegation{Name: cs.Project.Name, Keys: map[string]*metadata.Key{}, Threshold: cs.Project.Threshold}
	for _, m := range cs.Project.Maintainers {
		var w api.Key
		w.KeyType, w.Scheme, w.KeyVal.Public = m.KeyType, m.Scheme, m.Public
		k, err := tufrepo.KeyFromAPI(w)
		if err != nil {
			cs.t.Fatal(err)
		}
		d.Keys[m.KeyID] = k
		d.KeyIDs = append(d.KeyIDs, m.KeyID)
	}
	return d
}

func (cs *changeSignServer) cosign(w http.ResponseWriter, r *http.Request) {
	var req api.CoSignRequest
	json.NewDecoder(r.Body).Decode(&req)
	v, _ := strconv.ParseInt(r.PathValue("version"), 10, 64)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.cosigns = append(cs.cosigns, req)
	if r.URL.Query().Get("kind") != api.KindMaintainers {
		problem(w, http.StatusBadRequest, api.Errorf(api.CodeBadRequest, "not a maintainer change co-signature"))
		return
	}
	if cs.Refuse != nil {
		problem(w, http.StatusConflict, cs.Refuse)
		return
	}
	i := slices.IndexFunc(cs.proposals, func(p api.Proposal) bool { return p.Kind == api.KindMaintainers && p.Version == v })
	if i < 0 {
		problem(w, http.StatusNotFound, api.Errorf(api.CodeNotFound, "no proposal"))
		return
	}
	p := cs.proposals[i]
	var env struct {
		Signatures []metadata.Signature `json:"signatures"`
		Signed     json.RawMessage      `json:"signed"`
	}
	json.Unmarshal(p.Metadata, &env)
	sig, _ := hex.DecodeString(req.Sig)
	raw := tufrepo.Envelope(env.Signed, append(env.Signatures, metadata.Signature{KeyID: req.KeyID, Signature: sig}))
	acc, err := tufrepo.ValidateMaintainerChange(raw, cs.current(), cs.Project.DelegationVersion, time.Now())
	if err != nil {
		problem(w, http.StatusBadRequest, err)
		return
	}
	if !acc.Complete() {
		p.Metadata, p.SignedBy = raw, append(p.SignedBy, req.KeyID)
		cs.proposals[i] = p
		writeTestJSON(w, http.StatusAccepted, api.MaintainerChangeResult{Project: p.Project, Version: v, Status: api.StatusPending, Signatures: len(acc.SignedBy), Threshold: acc.Threshold})
		return
	}
	cs.proposals = slices.Delete(cs.proposals, i, i+1)
	var keys []*metadata.Key
	cs.Project.Maintainers = nil
	for _, id := range acc.New.KeyIDs {
		k := acc.New.Keys[id]
		keys = append(keys, k)
		cs.Project.Maintainers = append(cs.Project.Maintainers, api.Maintainer{KeyID: id, KeyType: k.Type, Scheme: k.Scheme, Public: k.Value.PublicKey})
	}
	cs.Project.Threshold, cs.Project.DelegationVersion = acc.New.Threshold, acc.Doc.Version
	cs.srv.AddProject(p.Project, keys, acc.New.Threshold, cs.claimed, cs.roleRaw)
	writeTestJSON(w, http.StatusCreated, api.MaintainerChangeResult{Project: p.Project, Version: v, Status: "applied", Signatures: len(acc.SignedBy), Threshold: acc.Threshold})
}

// Plant opens a maintainer change of project: the keys and threshold of set as version,
// signed by signers, expiring at expires.
func (cs *changeSignServer) Plant(project string, version int64, set client.MaintainerSet, expires time.Time, signers ...signature.Signer) {
	raw, err := client.SignMaintainerChange(context.Background(), client.NewMaintainerChange(project, version, set, expires), signers...)
	if err != nil {
		cs.t.Fatal(err)
	}
	p := api.Proposal{Project: project, Kind: api.KindMaintainers, Version: version, Threshold: cs.Project.Threshold, Metadata: raw,
		CreatedAt: time.Now().UTC(), ExpiresAt: expires.UTC()}
	c, err := client.ParseMaintainerChange(raw)
	if err != nil {
		cs.t.Fatal(err)
	}
	for _, s := range c.Signatures {
		p.SignedBy = append(p.SignedBy, s.KeyID)
	}
	if len(p.SignedBy) > 0 {
		p.ProposedBy = p.SignedBy[0]
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.proposals = append(cs.proposals, p)
}

// PlantRole opens a role proposal with whatever raw holds.
func (cs *changeSignServer) PlantRole(project string, version int64, raw []byte) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.proposals = append(cs.proposals, api.Proposal{Project: project, Kind: api.KindRole, Version: version, Threshold: cs.Project.Threshold, Metadata: raw,
		CreatedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Hour).UTC()})
}

func (cs *changeSignServer) Reset() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.proposals, cs.cosigns, cs.Refuse = nil, nil, nil
}

func (cs *changeSignServer) CoSigns() []api.CoSignRequest {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return slices.Clone(cs.cosigns)
}

// changeWorld is project "gadget" maintained by alice and bob (2 of 2, role signed by
// both, delegation version 3) behind a changeSignServer; c holds their keys and carol's
// and dave's.
type changeWorld struct {
	srv  *clienttest.Server
	cs   *changeSignServer
	c    *cli
	keys map[string]*metadata.Key
	sig  map[string]signature.Signer
}

func newChangeWorld(t *testing.T, claimed bool) *changeWorld {
	t.Helper()
	w := &changeWorld{srv: clienttest.New(t), c: newCLI(t), keys: map[string]*metadata.Key{}, sig: map[string]signature.Signer{}}
	w.c.vars["CAIRN_TOKEN"] = w.srv.Token
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		w.c.ok("key", "generate", "--name", n)
		w.sig[n], w.keys[n] = cliKey(t, w.c, n)
	}
	raw, err := client.SignRole(client.NewProjectRole(time.Now()), w.sig["alice"], w.sig["bob"])
	if err != nil {
		t.Fatal(err)
	}
	w.srv.AddProject("gadget", []*metadata.Key{w.keys["alice"], w.keys["bob"]}, 2, claimed, raw)
	w.cs = newChangeSignServer(t, w.srv, claimed, raw)
	delegator := tufrepo.RoleRecentlyClaimed
	if claimed {
		delegator = tufrepo.RoleClaimed
	}
	w.cs.Project = api.Project{Name: "gadget", Delegator: delegator, Threshold: 2, Delegated: true, DelegationVersion: 3, RoleVersion: 1, PublishedVersion: 1}
	for _, n := range []string{"alice", "bob"} {
		k := w.keys[n]
		w.cs.Project.Maintainers = append(w.cs.Project.Maintainers, api.Maintainer{KeyID: tufrepo.KeyID(k), KeyType: k.Type, Scheme: k.Scheme, Public: k.Value.PublicKey})
	}
	w.c.ok("init", "--server", w.cs.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(w.srv.Root())))
	return w
}

// set is the maintainer set of the named keys with threshold t.
func (w *changeWorld) set(t int, names ...string) client.MaintainerSet {
	s := client.MaintainerSet{Keys: map[string]*metadata.Key{}, Threshold: t}
	for _, n := range names {
		s.Keys[tufrepo.KeyID(w.keys[n])] = w.keys[n]
	}
	return s
}

func TestSignCoSignsAMaintainerChange(t *testing.T) {
	w := newChangeWorld(t, false)
	c, carol := w.c, tufrepo.KeyID(w.keys["carol"])
	week := time.Now().Add(client.MaintainerChangeExpiry)
	w.cs.Plant("gadget", 4, w.set(2, "alice", "bob", "carol"), week, w.sig["alice"])

	c.fails(4, "already signed maintainer change 4", "sign", "gadget", "--key", "alice", "--yes")
	c.fails(3, "not a maintainer key of project gadget", "sign", "gadget", "--key", "carol", "--yes")
	c.fails(10, `--kind must be "role" or "maintainers"`, "sign", "gadget", "--key", "bob", "--kind", "releases")
	r := c.fails(10, "--yes", "sign", "gadget", "--key", "bob")
	for _, want := range []string{"Maintainer change 4 of gadget (the maintainers are at version 3)", "1 of 2 required", "ADDS maintainer key " + carol, "fingerprint SHA256:",
		"keeps the threshold at 2: 2 of the 3 maintainer keys", `<- your key "bob"`, "<- proposer"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("review lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "Verified the maintainers of gadget (delegated by recently-claimed, 2 of 2 keys must sign)") {
		t.Errorf("review does not say what it verified:\n%s", r.stderr)
	}
	var rep signChangesOutput
	if err := json.Unmarshal([]byte(c.fails(10, "--yes", "sign", "gadget", "--key", "bob", "--output", "json").stdout), &rep); err != nil ||
		rep.Kind != api.KindMaintainers || len(rep.Proposals) != 1 || rep.Proposals[0].Signatures != 1 || len(rep.Proposals[0].Change.Added) != 1 || rep.Result != nil {
		t.Fatalf("json review: %v %+v", err, rep)
	}
	if n := len(w.cs.CoSigns()); n != 0 {
		t.Fatalf("%d signatures posted before confirmation", n)
	}

	out := c.ok("sign", "gadget", "--key", "bob", "--kind", "maintainers", "--yes")
	if !strings.Contains(out, "Signed. Applied: maintainer change 4 of gadget is published") || !strings.Contains(out, "(verified)") {
		t.Fatalf("sign: %s", out)
	}
	if cs := w.cs.CoSigns(); len(cs) != 1 || cs[0].KeyID != tufrepo.KeyID(w.keys["bob"]) {
		t.Fatalf("co-signatures: %+v", cs)
	}
	var l struct {
		Threshold int              `json:"threshold"`
		Keys      []client.KeyView `json:"keys"`
	}
	if err := json.Unmarshal([]byte(c.ok("maintainer", "list", "gadget", "--output", "json")), &l); err != nil || l.Threshold != 2 || len(l.Keys) != 3 {
		t.Fatalf("after co-signing, the verified maintainers are %+v %v", l, err)
	}
	if out := c.ok("sign", "gadget", "--key", "carol", "--kind", "maintainers"); !strings.Contains(out, "No maintainer changes of gadget are waiting") {
		t.Fatalf("nothing open: %s", out)
	}
}

func TestSignRefusesMaintainerChangesAnHonestServerWouldNotOffer(t *testing.T) {
	w := newChangeWorld(t, false)
	c := w.c
	week := time.Now().Add(client.MaintainerChangeExpiry)
	three := w.set(2, "alice", "bob", "carol")
	tests := []struct {
		name  string
		plant func()
		code  int
		want  string
	}{
		{"no maintainer's signature", func() { w.cs.Plant("gadget", 4, three, week, w.sig["carol"]) }, 2, "no current maintainer's signature on the change verifies"},
		{"no signature at all", func() { w.cs.Plant("gadget", 4, three, week) }, 2, "no current maintainer's signature"},
		{"a stranger also signed", func() { w.cs.Plant("gadget", 4, three, week, w.sig["alice"], w.sig["dave"]) }, 3, "not a current maintainer key"},
		{"expired", func() { w.cs.Plant("gadget", 4, three, time.Now().Add(-time.Minute), w.sig["alice"]) }, 4, "the change expired"},
		{"stale", func() { w.cs.Plant("gadget", 3, three, week, w.sig["alice"]) }, 4, "no longer applies"},
		{"skips a version", func() { w.cs.Plant("gadget", 5, three, week, w.sig["alice"]) }, 4, "so the next change is version 4"},
		{"threshold nobody can meet", func() { w.cs.Plant("gadget", 4, w.set(3, "alice", "bob"), week, w.sig["alice"]) }, 10, "threshold 3 is not possible with 2"},
		{"changes nothing", func() { w.cs.Plant("gadget", 4, w.set(2, "alice", "bob"), week, w.sig["alice"]) }, 10, "leaves the keys and threshold"},
		{"published role would not verify", func() { w.cs.Plant("gadget", 4, w.set(1, "carol"), week, w.sig["alice"]) }, 2, "clients could no longer verify gadget"},
	}
	for _, tt := range tests {
		w.cs.Reset()
		tt.plant()
		r := c.fails(tt.code, tt.want, "sign", "gadget", "--key", "bob", "--yes")
		if !strings.Contains(r.stdout, "CANNOT BE SIGNED") {
			t.Errorf("%s: the review does not say it cannot be signed:\n%s", tt.name, r.stdout)
		}
		if n := len(w.cs.CoSigns()); n != 0 {
			t.Fatalf("%s: a signature was posted", tt.name)
		}
	}

	// A server whose record disagrees with TUF: nothing is reviewed or signed.
	w.cs.Reset()
	w.cs.Plant("gadget", 4, three, week, w.sig["alice"])
	w.cs.mu.Lock()
	w.cs.Project.Threshold = 1
	w.cs.mu.Unlock()
	c.fails(4, "disagrees with the TUF metadata", "sign", "gadget", "--key", "bob", "--yes")
	w.cs.mu.Lock()
	w.cs.Project.Threshold = 2
	w.cs.mu.Unlock()

	// Two open changes, or a role version and a change with the same number: the user
	// must choose.
	w.cs.Plant("gadget", 5, w.set(1, "alice", "bob"), week, w.sig["alice"])
	c.fails(10, "choose the one to sign with --version", "sign", "gadget", "--key", "bob", "--yes")
	w.cs.Reset()
	w.cs.Plant("gadget", 4, three, week, w.sig["alice"])
	w.cs.PlantRole("gadget", 4, []byte("{}"))
	c.fails(10, "choose one with --kind role or --kind maintainers", "sign", "gadget", "--key", "bob", "--yes", "--version", "4")
	c.fails(10, "choose one with --kind role or --kind maintainers", "sign", "gadget", "--key", "bob", "--yes")
	c.fails(20, "no open proposal with version 9 (role versions: 4; maintainer changes: 4)", "sign", "gadget", "--key", "bob", "--yes", "--version", "9")
	c.fails(20, "no open maintainer change with version 9", "sign", "gadget", "--key", "bob", "--yes", "--version", "9", "--kind", "maintainers")
	r := c.fails(10, "does not parse", "sign", "gadget", "--key", "bob", "--yes", "--kind", "role")
	if !strings.Contains(r.stderr, "also has 1 maintainer change open") {
		t.Errorf("--kind role does not mention the open maintainer change:\n%s", r.stderr)
	}
	if n := len(w.cs.CoSigns()); n != 0 {
		t.Fatalf("a signature was posted")
	}
	out := c.ok("sign", "gadget", "--key", "bob", "--yes", "--version", "4", "--kind", "maintainers")
	if !strings.Contains(out, "Applied") {
		t.Fatalf("sign --kind maintainers --version 4: %s", out)
	}
}

func TestSignMaintainerChangeOfAClaimedProjectWithAChangeQueued(t *testing.T) {
	w := newChangeWorld(t, true)
	c := w.c
	week := time.Now().Add(client.MaintainerChangeExpiry)
	// Version 5 builds on a change (4) queued for the admins: its signers cannot be
	// verified here.
	w.cs.Plant("gadget", 5, w.set(1, "alice", "bob"), week, w.sig["alice"])
	r := c.fails(4, "builds on maintainer change(s) queued for the admins", "sign", "gadget", "--key", "bob", "--yes")
	if !strings.Contains(r.stdout, "CANNOT BE SIGNED") {
		t.Fatalf("review: %s", r.stdout)
	}
	// Version 4, built on the verified keys, while the server already queued a change:
	// the server refuses it, and the user is told why.
	w.cs.Reset()
	w.cs.Plant("gadget", 4, w.set(2, "alice", "bob", "carol"), week, w.sig["alice"])
	w.cs.mu.Lock()
	w.cs.Refuse = api.Errorf(api.CodeProposalStale, `the maintainer change 4 of "gadget" no longer applies: the maintainers are already at version 4; propose again`)
	w.cs.mu.Unlock()
	r = c.fails(4, "a maintainer change of gadget is already queued for the admins", "sign", "gadget", "--key", "bob", "--yes")
	if !strings.Contains(r.stderr, "the maintainers are already at version 4") || !strings.Contains(r.stderr, "cairn admin claim") {
		t.Fatalf("the refusal does not carry the server's message and what to do: %s", r.stderr)
	}
}
