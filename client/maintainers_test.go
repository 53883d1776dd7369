package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ecdsaKey is a P-256 key: its PEM public key has newlines, which canonical JSON leaves
// raw and the envelope must escape.
func ecdsaKey(t *testing.T) *clienttest.Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := tufrepo.PublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &clienttest.Key{Signer: s, Public: pk, ID: tufrepo.KeyID(pk)}
}

func setOf(threshold int, keys ...*clienttest.Key) MaintainerSet {
	s := MaintainerSet{Keys: map[string]*metadata.Key{}, Threshold: threshold}
	for _, k := range keys {
		s.Keys[k.ID] = k.Public
	}
	return s
}

func TestMaintainerChangeRoundTripsThroughServerValidation(t *testing.T) {
	alice, bob, carol := clienttest.NewKey(t), ecdsaKey(t), clienttest.NewKey(t)
	cur := setOf(1, alice, bob)
	next := setOf(2, alice, bob, carol)
	now := time.Now()
	doc := NewMaintainerChange("widget", 4, next, now.Add(MaintainerChangeExpiry))
	raw, err := SignMaintainerChange(context.Background(), doc, alice.Signer)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := tufrepo.ValidateMaintainerChange(raw, cur.Delegation("widget"), 3, now)
	if err != nil {
		t.Fatalf("the server's validation refuses the CLI's document: %v\n%s", err, raw)
	}
	if acc.Complete() != true || len(acc.SignedBy) != 1 || acc.New.Threshold != 2 || len(acc.New.KeyIDs) != 3 {
		t.Fatalf("accepted: %+v", acc)
	}

	// Parsed as a co-signer sees it, checked against the current keys, and co-signed.
	c, err := ParseMaintainerProposal(api.Proposal{Project: "widget", Kind: api.KindMaintainers, Version: 4, Metadata: raw})
	if err != nil {
		t.Fatal(err)
	}
	if sc := CheckChangeSignatures(c, cur); len(sc.Valid) != 1 || sc.Valid[0] != alice.ID || len(sc.Invalid)+len(sc.Untrusted) != 0 {
		t.Fatalf("signatures: %+v", sc)
	}
	if sc := CheckChangeSignatures(c, setOf(1, bob)); len(sc.Untrusted) != 1 {
		t.Fatalf("a signature by a non-maintainer is not flagged: %+v", sc)
	}
	keyID, sig, err := SignMaintainerProposal(context.Background(), c, bob.Signer)
	if err != nil || keyID != bob.ID {
		t.Fatal(err, keyID)
	}
	var env map[string]json.RawMessage
	json.Unmarshal(raw, &env)
	var sigs []map[string]string
	json.Unmarshal(env["signatures"], &sigs)
	sigs = append(sigs, map[string]string{"keyid": keyID, "sig": sig})
	env["signatures"], _ = json.Marshal(sigs)
	both, _ := json.Marshal(env)
	acc, err = tufrepo.ValidateMaintainerChange(both, setOf(2, alice, bob).Delegation("widget"), 3, now)
	if err != nil || len(acc.SignedBy) != 2 || !acc.Complete() {
		t.Fatalf("co-signed change: %v %+v", err, acc)
	}

	// A proposal that is not what its listing says is refused.
	if _, err := ParseMaintainerProposal(api.Proposal{Project: "widget", Kind: api.KindMaintainers, Version: 5, Metadata: raw}); err == nil {
		t.Fatal("a proposal listed under another version was accepted")
	}
	if _, err := ParseMaintainerProposal(api.Proposal{Project: "widget", Kind: api.KindRole, Version: 4, Metadata: raw}); err == nil {
		t.Fatal("a role proposal was parsed as a maintainer change")
	}
	if _, err := ParseMaintainerChange([]byte(`{"signatures":[],"signed":{"_type":"targets"}}`)); err == nil {
		t.Fatal("a document of another type was accepted")
	}
}

func TestDiffMaintainersInWords(t *testing.T) {
	alice, bob, carol := clienttest.NewKey(t), clienttest.NewKey(t), clienttest.NewKey(t)
	d := DiffMaintainers("widget", 2, setOf(1, alice, bob), setOf(2, alice, carol))
	if len(d.Added) != 1 || d.Added[0].KeyID != carol.ID || len(d.Removed) != 1 || d.Removed[0].KeyID != bob.ID || len(d.Kept) != 1 || d.Empty() {
		t.Fatalf("diff: %+v", d)
	}
	text := strings.Join(d.Lines(), "\n")
	for _, want := range []string{"ADDS maintainer key " + carol.ID, "REMOVES maintainer key " + bob.ID, "keeps maintainer key " + alice.ID, "CHANGES the threshold from 1 to 2: 2 of the 2", "SHA256:"} {
		if !strings.Contains(text, want) {
			t.Fatalf("lines do not say %q:\n%s", want, text)
		}
	}
	if !DiffMaintainers("widget", 2, setOf(1, alice), setOf(1, alice)).Empty() {
		t.Fatal("an empty change is not Empty")
	}
}

func TestCheckMaintainerSet(t *testing.T) {
	alice, bob := clienttest.NewKey(t), clienttest.NewKey(t)
	wrongID := setOf(1, alice)
	wrongID.Keys["00"+alice.ID[2:]] = bob.Public
	tests := []struct {
		name string
		set  MaintainerSet
		code api.Code
		want string
	}{
		{"no keys", setOf(1), api.CodeInvalidThreshold, "at least one"},
		{"threshold zero", setOf(0, alice), api.CodeInvalidThreshold, "at least one maintainer must sign"},
		{"threshold above keys", setOf(3, alice, bob), api.CodeInvalidThreshold, "threshold 3 is not possible with 2"},
		{"key under another ID", wrongID, api.CodeInvalidKey, "has key ID"},
	}
	for _, tc := range tests {
		err := CheckMaintainerSet("widget", tc.set)
		if ae, ok := err.(*api.Error); !ok || ae.Code != tc.code || !strings.Contains(ae.Detail, tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := CheckMaintainerSet("widget", setOf(2, alice, bob)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckServerProject(t *testing.T) {
	alice, bob, mallory := clienttest.NewKey(t), clienttest.NewKey(t), clienttest.NewKey(t)
	pr := &ProjectRole{Name: "widget", Delegator: tufrepo.RoleRecentlyClaimed, Tree: tufrepo.RoleRecentlyClaimed, KeyIDs: []string{alice.ID, bob.ID}, Keys: map[string]*metadata.Key{alice.ID: alice.Public, bob.ID: bob.Public}, Threshold: 1, SnapshotVersion: 7}
	m := func(k *clienttest.Key) api.Maintainer {
		return api.Maintainer{KeyID: k.ID, Public: k.Public.Value.PublicKey}
	}
	honest := api.Project{Name: "widget", Delegator: tufrepo.RoleRecentlyClaimed, Threshold: 1, Maintainers: []api.Maintainer{m(alice), m(bob)}, Delegated: true, DelegationVersion: 2}
	if err := CheckServerProject(honest, pr); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(*api.Project)
		want string
	}{
		"extra key":        {func(p *api.Project) { p.Maintainers = append(p.Maintainers, m(mallory)) }, "which the verified metadata does not trust"},
		"missing key":      {func(p *api.Project) { p.Maintainers = p.Maintainers[:1] }, "which the server does not list"},
		"other public key": {func(p *api.Project) { p.Maintainers[0].Public = mallory.Public.Value.PublicKey }, "different public key"},
		"threshold":        {func(p *api.Project) { p.Threshold = 2 }, "threshold 2"},
		"delegator":        {func(p *api.Project) { p.Delegator = tufrepo.RoleClaimed }, "the server says claimed delegates to it"},
		"unpublished":      {func(p *api.Project) { p.Delegated = false }, "not yet published"},
		"change unpublished": {func(p *api.Project) {
			p.Delegated = false
			p.Threshold = 2
		}, "is not published yet"},
	} {
		p := honest
		p.Maintainers = append([]api.Maintainer(nil), honest.Maintainers...)
		tc.edit(&p)
		err := CheckServerProject(p, pr)
		if ae, ok := err.(*api.Error); !ok || ae.Code != api.CodeVersionConflict || !strings.Contains(ae.Detail, tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
