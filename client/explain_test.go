package client

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestExplainRecentlyClaimedAndClaimed(t *testing.T) {
	for _, claimed := range []bool{false, true} {
		f := newFixture(t, "widget", claimed,
			release{"1.0.0", map[string]string{"widget-1.0.0.tar.gz": "one"}},
			release{"2.0.0", map[string]string{"widget-2.0.0.tar.gz": "two", "widget-2.0.0.zip": "two, zipped"}})
		e, err := f.repo(t).Explain(ctx(t), "widget", "")
		if err != nil {
			t.Fatal(err)
		}
		wantDelegator, wantMeaning := tufrepo.RoleRecentlyClaimed, MeaningRecentlyClaimed
		if claimed {
			wantDelegator, wantMeaning = tufrepo.RoleClaimed, MeaningClaimed
		}
		if e.Release != "2.0.0" || e.Claimed != claimed || e.Delegator != wantDelegator || e.Meaning != wantMeaning || e.Yanked || e.SnapshotVersion != f.srv.SnapshotVersion() {
			t.Fatalf("claimed=%v: %+v", claimed, e)
		}
		var roles []string
		for _, l := range e.Chain {
			roles = append(roles, l.Role)
			if !l.ThresholdMet || l.Signatures != 1 || l.Threshold != 1 || len(l.Keys) != 1 || !l.Keys[0].Signed || !strings.HasPrefix(l.Keys[0].Fingerprint, "SHA256:") || !l.Expires.After(time.Now()) {
				t.Fatalf("link %s: %+v", l.Role, l)
			}
		}
		if want := []string{"root", "timestamp", "snapshot", "targets", wantDelegator, "widget"}; !slices.Equal(roles, want) {
			t.Fatalf("chain %v, want %v", roles, want)
		}
		last := e.Chain[5]
		if last.Keys[0].KeyID != f.key.ID || last.DelegatedBy != wantDelegator || !slices.Equal(last.Paths, []string{"widget/*/*"}) || last.KeyHolder != "project maintainers" || last.Version != f.role.Signed.Version {
			t.Fatalf("project link: %+v", last)
		}
		if e.Chain[4].DelegatedBy != tufrepo.RoleTargets || e.Chain[3].DelegatedBy != tufrepo.RoleRoot {
			t.Fatalf("delegated by: %+v", e.Chain)
		}
		if len(e.Files) != 2 || e.Files[0].SHA256 == "" || e.Files[0].Path != "widget/2.0.0/"+e.Files[0].Name {
			t.Fatalf("files: %+v", e.Files)
		}
	}
}

func TestExplainPinnedYankedAndUnknown(t *testing.T) {
	f := newFixture(t, "widget", false, release{"1.0.0", map[string]string{"w.tar.gz": "one"}})
	// Yank 1.0.0 with a reason in a new role version.
	next := NewProjectRole(time.Now())
	next.Signed.Version = f.role.Signed.Version + 1
	next.Signed.Targets = map[string]*metadata.TargetFiles{}
	for p, tf := range f.role.Signed.Targets {
		c := *tf
		raw := json.RawMessage(`{"version":"1.0.0","yanked":true,"yank_reason":"broken build"}`)
		c.Custom = &raw
		next.Signed.Targets[p] = &c
	}
	raw, err := SignRole(next, f.key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.PublishRole("widget", raw)
	r := f.repo(t)
	e, err := r.Explain(ctx(t), "widget", "1.0.0")
	if err != nil || !e.Yanked || e.YankReason != "broken build" || e.Release != "1.0.0" {
		t.Fatalf("pinned yanked release: %v %+v", err, e)
	}
	for _, tc := range []struct{ project, version, want string }{
		{"widget", "", "no release that is not yanked"},
		{"widget", "9.9.9", "no release \"9.9.9\""},
		{"nosuch", "", "not in the verified metadata"},
	} {
		_, err := r.Explain(ctx(t), tc.project, tc.version)
		var ae *api.Error
		if !asAPIError(err, &ae) || ae.Code != api.CodeNotFound || !strings.Contains(err.Error(), tc.want) || Classify(err) != ExitFailure {
			t.Errorf("%s@%s: %v", tc.project, tc.version, err)
		}
	}
}

func TestExplainRefusesForgedRole(t *testing.T) {
	f := newFixture(t, "widget", true, release{"1.0.0", map[string]string{"w.tar.gz": "one"}})
	mallory := newFixture(t, "other", false).key
	next := NewProjectRole(time.Now())
	next.Signed.Version = f.role.Signed.Version + 1
	next.Signed.Targets = f.role.Signed.Targets
	raw, err := SignRole(next, mallory.Signer)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.PublishRole("widget", raw)
	_, err = f.repo(t).Explain(ctx(t), "widget", "1.0.0")
	if Classify(err) != ExitKeyNotTrusted {
		t.Fatalf("a role signed by an undelegated key: %v (exit %d)", err, Classify(err))
	}
}
