package cli

import (
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
