package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func fileFor(name, content string) api.File {
	sum := sha256.Sum256([]byte(content))
	return api.File{Name: name, Length: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
}

// history builds v1 (empty), v2 (1.0 with two files) and v3 (+ 2.0).
func history(t *testing.T) (v1, v2, v3 *metadata.Metadata[metadata.TargetsType]) {
	t.Helper()
	now := time.Now()
	v1 = NewProjectRole(now)
	var err error
	if v2, err = NextProjectRole(v1, "demo", "1.0", []api.File{fileFor("demo-1.0.tar.gz", "a"), fileFor("demo-1.0.whl", "bb")}, now); err != nil {
		t.Fatal(err)
	}
	if v3, err = NextProjectRole(v2, "demo", "2.0", []api.File{fileFor("demo-2.0.tar.gz", "ccc")}, now); err != nil {
		t.Fatal(err)
	}
	return v1, v2, v3
}

func roundTrip(t *testing.T, md *metadata.Metadata[metadata.TargetsType]) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	raw, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDiffRolesAddsReleases(t *testing.T) {
	v1, v2, v3 := history(t)
	c := DiffRoles("demo", v1, v2)
	if c.FromVersion != 1 || c.ToVersion != 2 || len(c.Added) != 1 || c.Added[0].Version != "1.0" || len(c.Added[0].Files) != 2 || c.Added[0].Existing || c.Empty() {
		t.Fatalf("v1→v2 = %+v", c)
	}
	if f := c.Added[0].Files[0]; f.Name != "demo-1.0.tar.gz" || f.Length != 1 || f.SHA256 != fileFor("x", "a").SHA256 || f.Path != "demo/1.0/demo-1.0.tar.gz" {
		t.Fatalf("added file = %+v", f)
	}
	c = DiffRoles("demo", v2, v3)
	if len(c.Added) != 1 || c.Added[0].Version != "2.0" || len(c.Yanked)+len(c.Removed)+len(c.Modified)+len(c.CustomChanged)+len(c.Other) != 0 {
		t.Fatalf("v2→v3 = %+v", c)
	}
	if c := DiffRoles("demo", nil, v1); c.FromVersion != 0 || !c.Empty() || !c.ExpiresBefore.IsZero() {
		t.Fatalf("new project = %+v", c)
	}
	if err := CheckProposal("demo", v2, v3, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := CheckProposal("demo", nil, v1, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestNextYankRoleAndBack(t *testing.T) {
	_, _, v3 := history(t)
	v3 = roundTrip(t, v3)
	before, _ := v3.ToBytes(false)
	v4, err := NextYankRole(v3, "demo", "1.0", true, "CVE-2026-0001", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := v3.ToBytes(false); string(after) != string(before) {
		t.Fatal("NextYankRole changed the current role")
	}
	v4 = roundTrip(t, v4)
	if v4.Signed.Version != 4 || len(v4.Signed.Targets) != 3 || len(v4.Signatures) != 0 {
		t.Fatalf("v4 = %+v", v4.Signed)
	}
	for _, p := range []string{"demo/1.0/demo-1.0.tar.gz", "demo/1.0/demo-1.0.whl"} {
		var c map[string]any
		if err := json.Unmarshal(*v4.Signed.Targets[p].Custom, &c); err != nil || c["yanked"] != true || c["yank_reason"] != "CVE-2026-0001" || c["version"] != "1.0" {
			t.Fatalf("custom of %s = %v (%v)", p, c, err)
		}
	}
	rels := ReleasesFromRole("demo", v4)
	if rel, _ := FindRelease(rels, "1.0"); !rel.Yanked || rel.YankReason != "CVE-2026-0001" {
		t.Fatalf("1.0 after the yank = %+v", rel)
	}
	if latest, _ := LatestRelease(rels); latest.Version != "2.0" {
		t.Fatalf("latest = %s", latest.Version)
	}
	c := DiffRoles("demo", v3, v4)
	if len(c.Yanked) != 1 || c.Yanked[0].Version != "1.0" || c.Yanked[0].Reason != "CVE-2026-0001" || len(c.Yanked[0].Files) != 2 || len(c.Added) != 0 || len(c.CustomChanged) != 0 {
		t.Fatalf("yank diff = %+v", c)
	}
	if err := CheckProposal("demo", v3, v4, time.Now()); err != nil {
		t.Fatalf("a yank is a sane proposal: %v", err)
	}
	// The server accepts it as a change of custom data only.
	k := clienttest.NewKey(t)
	acc, err := tufrepo.ValidateProposal(mustSign(t, k, v4), stateOf(t, k, v3), time.Now(), func([]string) (map[string]int64, error) { return nil, nil })
	if err != nil || len(acc.ChangedCustom) != 2 || len(acc.NewFiles) != 0 {
		t.Fatalf("server validation of the yank: %+v %v", acc, err)
	}

	if _, err := NextYankRole(v4, "demo", "1.0", true, "", time.Now()); api.CodeOf(err) != api.CodeBadRequest || !strings.Contains(err.Error(), "already yanked (reason: CVE-2026-0001)") {
		t.Fatalf("yanking twice: %v", err)
	}
	if _, err := NextYankRole(v4, "demo", "2.0", false, "", time.Now()); api.CodeOf(err) != api.CodeBadRequest || !strings.Contains(err.Error(), "not yanked") {
		t.Fatalf("unyanking a release that is not yanked: %v", err)
	}
	if _, err := NextYankRole(v4, "demo", "3.0", true, "", time.Now()); api.CodeOf(err) != api.CodeNotFound || !strings.Contains(err.Error(), "2.0, 1.0") {
		t.Fatalf("yanking an unknown release: %v", err)
	}
	if _, err := NextYankRole(v4, "demo", "2.0", true, strings.Repeat("x", MaxYankReason+1), time.Now()); api.CodeOf(err) != api.CodeBadRequest {
		t.Fatalf("an overlong reason: %v", err)
	}
	if _, err := NextYankRole(v4, "demo", "2.0", true, "two\nlines", time.Now()); api.CodeOf(err) != api.CodeBadRequest {
		t.Fatalf("a reason with a newline: %v", err)
	}
	if _, err := NextYankRole(v4, "demo", "1.0", false, "why", time.Now()); api.CodeOf(err) != api.CodeBadRequest {
		t.Fatalf("unyank with a reason: %v", err)
	}

	v5, err := NextYankRole(v4, "demo", "1.0", false, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v5 = roundTrip(t, v5)
	for p, tf := range v5.Signed.Targets {
		if string(*tf.Custom) != string(*v3.Signed.Targets[p].Custom) && !sameJSON(*tf.Custom, *v3.Signed.Targets[p].Custom) {
			t.Fatalf("unyank left %s with custom %s, was %s", p, *tf.Custom, *v3.Signed.Targets[p].Custom)
		}
	}
	c = DiffRoles("demo", v4, v5)
	if len(c.Unyanked) != 1 || c.Unyanked[0].Version != "1.0" || c.Unyanked[0].Reason != "CVE-2026-0001" {
		t.Fatalf("unyank diff = %+v", c)
	}
	// Changing only the reason is its own kind of change.
	v5b, err := NextYankRole(v4, "demo", "2.0", true, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reason := json.RawMessage(`{"version":"1.0","yanked":true,"yank_reason":"a better reason"}`)
	for _, p := range []string{"demo/1.0/demo-1.0.tar.gz", "demo/1.0/demo-1.0.whl"} {
		tf := *v5b.Signed.Targets[p]
		tf.Custom = &reason
		v5b.Signed.Targets[p] = &tf
	}
	c = DiffRoles("demo", v4, v5b)
	if len(c.ReasonChanged) != 1 || c.ReasonChanged[0].PreviousReason != "CVE-2026-0001" || c.ReasonChanged[0].Reason != "a better reason" || len(c.Yanked) != 1 || c.Yanked[0].Version != "2.0" {
		t.Fatalf("reason change diff = %+v", c)
	}
}

func mustSign(t *testing.T, k *clienttest.Key, md *metadata.Metadata[metadata.TargetsType]) []byte {
	t.Helper()
	raw, err := SignRole(md, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func stateOf(t *testing.T, k *clienttest.Key, md *metadata.Metadata[metadata.TargetsType]) tufrepo.ProjectState {
	t.Helper()
	st := tufrepo.ProjectState{
		Delegation:     tufrepo.ProjectDelegation{Name: "demo", Keys: map[string]*metadata.Key{k.ID: k.Public}, KeyIDs: []string{k.ID}, Threshold: 1},
		CurrentVersion: md.Signed.Version,
		Files:          map[string]tufrepo.PublishedFile{},
	}
	for p, tf := range md.Signed.Targets {
		f := tufrepo.PublishedFile{Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
		if tf.Custom != nil {
			f.Custom = *tf.Custom
		}
		st.Files[p] = f
	}
	return st
}

func TestCheckProposalRefusals(t *testing.T) {
	_, v2, v3 := history(t)
	now := time.Now()
	clone := func() *metadata.Metadata[metadata.TargetsType] { return roundTrip(t, v3) }
	tests := []struct {
		name   string
		edit   func(md *metadata.Metadata[metadata.TargetsType])
		code   api.Code
		detail string
	}{
		{"stale", func(md *metadata.Metadata[metadata.TargetsType]) { md.Signed.Version = 2 }, api.CodeProposalStale, "no longer applies"},
		{"ahead", func(md *metadata.Metadata[metadata.TargetsType]) { md.Signed.Version = 4 }, api.CodeVersionConflict, "next version is 3"},
		{"removes a file", func(md *metadata.Metadata[metadata.TargetsType]) {
			delete(md.Signed.Targets, "demo/1.0/demo-1.0.whl")
		}, api.CodeImmutablePath, "removes the published file demo/1.0/demo-1.0.whl"},
		{"changes a hash", func(md *metadata.Metadata[metadata.TargetsType]) {
			tf := *md.Signed.Targets["demo/1.0/demo-1.0.whl"]
			tf.Hashes = metadata.Hashes{"sha256": make([]byte, 32)}
			md.Signed.Targets["demo/1.0/demo-1.0.whl"] = &tf
		}, api.CodeImmutablePath, "changes the published file demo/1.0/demo-1.0.whl"},
		{"changes a length", func(md *metadata.Metadata[metadata.TargetsType]) {
			tf := *md.Signed.Targets["demo/1.0/demo-1.0.whl"]
			tf.Length = 99
			md.Signed.Targets["demo/1.0/demo-1.0.whl"] = &tf
		}, api.CodeImmutablePath, "to 99 bytes"},
		{"adds a hash", func(md *metadata.Metadata[metadata.TargetsType]) {
			tf := *md.Signed.Targets["demo/1.0/demo-1.0.whl"]
			tf.Hashes = metadata.Hashes{"sha256": tf.Hashes["sha256"], "sha512": make([]byte, 64)}
			md.Signed.Targets["demo/1.0/demo-1.0.whl"] = &tf
		}, api.CodeImmutablePath, "demo-1.0.whl"},
		{"outside the project", func(md *metadata.Metadata[metadata.TargetsType]) {
			md.Signed.Targets["other/1.0/x"] = metadata.TargetFile()
		}, api.CodePathOutsideProject, `"other/1.0/x"`},
		{"delegates", func(md *metadata.Metadata[metadata.TargetsType]) {
			md.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
		}, api.CodeDelegationForbidden, "delegates"},
		{"expired", func(md *metadata.Metadata[metadata.TargetsType]) { md.Signed.Expires = now.Add(-time.Hour) }, api.CodeExpired, "expired"},
	}
	for _, tt := range tests {
		md := clone()
		tt.edit(md)
		err := CheckProposal("demo", v2, md, now)
		if api.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("%s: %v; want %s mentioning %q", tt.name, err, tt.code, tt.detail)
		}
	}

	// Other changes are described, not hidden.
	md := clone()
	md.Signed.UnrecognizedFields = map[string]any{"x-note": "hi"}
	custom := json.RawMessage(`{"version":"1.0","build":"7"}`)
	tf := *md.Signed.Targets["demo/1.0/demo-1.0.whl"]
	tf.Custom = &custom
	md.Signed.Targets["demo/1.0/demo-1.0.whl"] = &tf
	c := DiffRoles("demo", v3, md)
	if len(c.CustomChanged) != 1 || c.CustomChanged[0].Fields[0] != "build" || len(c.Other) != 1 || !strings.Contains(c.Other[0], "x-note") {
		t.Fatalf("other changes = %+v", c)
	}
}

func TestSignProposalMatchesServerVerification(t *testing.T) {
	alice, bob := clienttest.NewKey(t), clienttest.NewKey(t)
	_, v2, v3 := history(t)
	raw, err := SignRole(v3, alice.Signer)
	if err != nil {
		t.Fatal(err)
	}
	p := api.Proposal{Project: "demo", Version: 3, Metadata: raw}
	md, err := ParseProposal(p)
	if err != nil {
		t.Fatal(err)
	}
	id, sig, err := SignProposal(md, bob.Signer)
	if err != nil || id != bob.ID {
		t.Fatal(err, id)
	}
	if len(md.Signatures) != 1 {
		t.Fatal("SignProposal changed the metadata")
	}
	sigBytes, _ := hex.DecodeString(sig)
	md.Signatures = append(md.Signatures, metadata.Signature{KeyID: id, Signature: sigBytes})
	both, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	st := stateOf(t, alice, v2)
	st.Delegation.Keys = map[string]*metadata.Key{alice.ID: alice.Public, bob.ID: bob.Public}
	st.Delegation.KeyIDs = []string{alice.ID, bob.ID}
	st.Delegation.Threshold = 2
	blobs := func(sums []string) (map[string]int64, error) { return map[string]int64{sums[0]: 3}, nil }
	acc, err := tufrepo.ValidateProposal(both, st, time.Now(), blobs)
	if err != nil || !acc.Complete() {
		t.Fatalf("the server does not accept the co-signature: %+v %v", acc, err)
	}
	sc := CheckSignatures(md, st.Delegation.Keys, st.Delegation.KeyIDs)
	if len(sc.Valid) != 2 || len(sc.Invalid)+len(sc.Untrusted) != 0 {
		t.Fatalf("CheckSignatures = %+v", sc)
	}
	// A signature over other bytes is invalid; an outsider's is untrusted.
	md.Signatures[1].Signature[0] ^= 1
	md.Signatures = append(md.Signatures, metadata.Signature{KeyID: "ff" + strings.Repeat("0", 62), Signature: []byte{1}})
	sc = CheckSignatures(md, st.Delegation.Keys, st.Delegation.KeyIDs)
	if len(sc.Valid) != 1 || len(sc.Invalid) != 1 || sc.Invalid[0] != bob.ID || len(sc.Untrusted) != 1 {
		t.Fatalf("CheckSignatures of bad signatures = %+v", sc)
	}

	if _, err := ParseProposal(api.Proposal{Project: "demo", Version: 4, Metadata: raw}); api.CodeOf(err) != api.CodeMalformedMetadata {
		t.Fatalf("a proposal whose version disagrees: %v", err)
	}
	if _, err := ParseProposal(api.Proposal{Project: "demo", Version: 3, Metadata: []byte("{")}); api.CodeOf(err) != api.CodeMalformedMetadata {
		t.Fatalf("a proposal that does not parse: %v", err)
	}
}

func TestPendingAndCoSignRequests(t *testing.T) {
	var got struct {
		method, path, query, auth string
		body                      api.CoSignRequest
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.query, got.auth = r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization")
		w.Header().Set("Content-Type", api.MediaJSON)
		switch {
		case r.Method == http.MethodGet:
			io.WriteString(w, `{"project":"demo","proposals":null}`)
		case strings.Contains(r.URL.Path, "/signatures"):
			json.NewDecoder(r.Body).Decode(&got.body)
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"project":"demo","role_version":3,"status":"pending","signatures":2,"threshold":3}`)
		}
	}))
	defer hs.Close()
	a, err := NewAPI(hs.URL, WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := a.Pending(context.Background(), "demo")
	if err != nil || pl.Proposals == nil || got.path != "/api/v1/projects/demo/pending" || got.method != http.MethodGet {
		t.Fatalf("Pending: %+v %v %+v", pl, err, got)
	}
	id := strings.Repeat("ab", 32)
	res, err := a.CoSign(context.Background(), "demo", 3, id, "00ff", 10*time.Second)
	if err != nil || res.Status != api.StatusPending || res.Signatures != 2 || res.Threshold != 3 {
		t.Fatalf("CoSign: %+v %v", res, err)
	}
	if got.method != http.MethodPost || got.path != "/api/v1/projects/demo/pending/3/signatures" || got.query != "wait=10s" || got.auth != "Bearer tok" || got.body.KeyID != id || got.body.Sig != "00ff" {
		t.Fatalf("CoSign request = %+v", got)
	}
	for _, bad := range []struct {
		project, id, sig string
		version          int64
	}{
		{"Demo", id, "00", 3}, {"demo", "xyz", "00", 3}, {"demo", id, "", 3}, {"demo", id, "zz", 3}, {"demo", id, "00", 0},
	} {
		if _, err := a.CoSign(context.Background(), bad.project, bad.version, bad.id, bad.sig, 0); err == nil {
			t.Errorf("CoSign(%+v) was sent", bad)
		}
	}
}
