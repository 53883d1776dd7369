package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/internal/tufjs"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// claim moves projects into claimed the way `cairn admin claim` does: from the queue,
// the next claimed version, signed offline with the claimed key.
func claim(t *testing.T, r *testrepo.Repo, projects ...string) api.ClaimResult {
	t.Helper()
	var q api.ClaimQueue
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/admin/claims", r.AdminToken, "", nil).Body, &q); err != nil {
		t.Fatal(err)
	}
	md, err := metadata.Targets().FromBytes(q.Claimed)
	if err != nil {
		t.Fatal(err)
	}
	md.Signed.Version = q.ClaimedVersion + 1
	md.Signed.Expires = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
	if md.Signed.Delegations == nil {
		md.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	for _, p := range q.Projects {
		want := p.Claimed
		for _, n := range projects {
			want = want || n == p.Name
		}
		if !want || p.Claimed && !p.Change {
			continue
		}
		// A claimed project with a queued change is replaced, not delegated twice.
		md.Signed.Delegations.Roles = slices.DeleteFunc(md.Signed.Delegations.Roles, func(r metadata.DelegatedRole) bool { return r.Name == p.Name })
		d := metadata.DelegatedRole{Name: p.Name, Threshold: p.Threshold, Terminating: true, Paths: []string{tufrepo.ProjectPathPattern(p.Name)}}
		for id, k := range p.Keys {
			mk, err := tufrepo.KeyFromAPI(k)
			if err != nil {
				t.Fatal(err)
			}
			md.Signed.Delegations.Keys[id] = mk
			d.KeyIDs = append(d.KeyIDs, id)
		}
		md.Signed.Delegations.Roles = append(md.Signed.Delegations.Roles, d)
	}
	md.ClearSignatures()
	signed, err := tufrepo.Canonical(md.Signed)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tufrepo.SignEnvelope(context.Background(), signed, r.OfflineSigner(t, tufrepo.RoleClaimed))
	if err != nil {
		t.Fatal(err)
	}
	resp := r.Do(t, "POST", "/api/v1/admin/claimed", r.AdminToken, api.MediaJSON, raw)
	var res api.ClaimResult
	if err := json.Unmarshal(resp.Body, &res); err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("uploading claimed: %d %s", resp.Status, resp.Body)
	}
	return res
}

// forgeRole is the attacker's move with the database and the online keys: it re-delegates
// project to their key through recently-claimed and, if md is not nil, publishes that role
// version signed by them.
func forgeRole(t *testing.T, r *testrepo.Repo, project string, md *metadata.Metadata[metadata.TargetsType], mallory *testrepo.Key) {
	t.Helper()
	ctx := context.Background()
	keys, _ := json.Marshal(map[string]*metadata.Key{mallory.ID(): mallory.Signer.Key})
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE projects SET delegator = 'recently-claimed', keys = $2, keyids = $3, threshold = 1, delegated = false WHERE name = $1`, project, keys, []string{mallory.ID()}); err != nil {
		t.Fatal(err)
	}
	if md != nil {
		raw := testrepo.Sign(t, md, mallory)
		v := md.Signed.Version
		if _, err := r.DB.Pool.Exec(ctx, `INSERT INTO metadata (role, version, raw, length, sha256, expires, action) VALUES ($1, $2, $3, $4, $5, now() + interval '1 day', 'accepted')`, project, v, raw, len(raw), shaBytes(raw)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.DB.Pool.Exec(ctx, `UPDATE projects SET role_version = $2 WHERE name = $1`, project, v); err != nil {
			t.Fatal(err)
		}
		for p, tf := range md.Signed.Targets {
			if _, err := r.DB.Pool.Exec(ctx, `INSERT INTO release_files (path, project, version, filename, length, sha256, role_version) VALUES ($1, $2, 'x', 'x', $3, $4, $5) ON CONFLICT DO NOTHING`, p, project, tf.Length, []byte(tf.Hashes["sha256"]), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishAll(t, r)
}

// TestClaimedProjectSurvivesServerCompromise: once a project is claimed (offline keys), an
// attacker with the database and every online key cannot get a client to accept a release,
// a yank or a maintainer change the maintainers did not sign. Each attack is published with
// the real online keys (a re-signed recently-claimed, a new snapshot and timestamp).
func TestClaimedProjectSurvivesServerCompromise(t *testing.T) {
	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	evil := testrepo.File{Path: "demo/6.6.6/demo-6.6.6.tar.gz", Content: []byte("malware")}
	exp := time.Now().Add(24 * time.Hour)
	for _, attack := range []struct {
		name string
		role func(w *world) *metadata.Metadata[metadata.TargetsType]
		// check runs against each client after the attack.
		check func(t *testing.T, w *world, c client)
	}{
		{"forged release", func(w *world) *metadata.Metadata[metadata.TargetsType] {
			return testrepo.Role(4, exp, w.f1, w.f2, evil)
		}, func(t *testing.T, w *world, c client) {
			checkRefused(t, c, evil.Path, refusal{isUnsigned, tufjs.ExitSignature, 3})
		}},
		{"forged yank", func(w *world) *metadata.Metadata[metadata.TargetsType] {
			md := testrepo.Role(4, exp, w.f1, w.f2)
			yanked := json.RawMessage(`{"yanked":true,"yank_reason":"forged"}`)
			md.Signed.Targets[w.f1.Path].Custom = &yanked
			return md
		}, func(t *testing.T, w *world, c client) {
			checkRefused(t, c, w.f1.Path, refusal{isUnsigned, tufjs.ExitSignature, 3})
		}},
		{"forged maintainer change", func(*world) *metadata.Metadata[metadata.TargetsType] { return nil }, func(t *testing.T, w *world, c client) {
			// recently-claimed now delegates demo to the attacker, but clients never ask it:
			// the genuine release still verifies through claimed.
			if got, err := c.get(t, w.f2.Path); err != nil || string(got) != string(w.f2.Content) {
				t.Fatalf("%s after a forged maintainer change: %v", c.name, err)
			}
		}},
	} {
		t.Run(attack.name, func(t *testing.T) {
			w := newWorld(t)
			if res := claim(t, w.r, "demo"); len(res.Moved) != 1 || res.Moved[0] != "demo" {
				t.Fatalf("claim: %+v", res)
			}
			cs := clients(t, w.r)
			for _, c := range cs {
				if _, err := c.get(t, w.f2.Path); err != nil {
					t.Fatalf("%s after claiming: %v", c.name, err)
				}
			}
			w.r.PutBlob(t, w.r.AdminToken, evil.Content)
			forgeRole(t, w.r, "demo", attack.role(w), mallory)
			rc, err := metadata.Targets().FromBytes(latestRole(t, w.r, tufrepo.RoleRecentlyClaimed))
			if err != nil || len(rc.Signed.Delegations.Roles) != 1 || rc.Signed.Delegations.Roles[0].KeyIDs[0] != mallory.ID() {
				t.Fatalf("the attack did not publish a recently-claimed delegating demo to the attacker: %v", err)
			}
			for _, c := range cs {
				attack.check(t, w, c)
			}
		})
	}
}

// latestRole returns the bytes of the newest published version of role.
func latestRole(t *testing.T, r *testrepo.Repo, role string) []byte {
	t.Helper()
	m, err := r.DB.LatestPublished(context.Background(), role)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// TestRecentlyClaimedBoundary writes down what the same attacker CAN do to a project that
// is not yet claimed: recently-claimed is signed online, so they re-delegate the project
// to their own key and clients accept their release. This is PEP 480's accepted window;
// claiming closes it (TestClaimedProjectSurvivesServerCompromise).
func TestRecentlyClaimedBoundary(t *testing.T) {
	w := newWorld(t)
	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	evil := testrepo.File{Path: "demo/6.6.6/demo-6.6.6.tar.gz", Content: []byte("malware")}
	w.r.PutBlob(t, w.r.AdminToken, evil.Content)
	forgeRole(t, w.r, "demo", testrepo.Role(4, time.Now().Add(24*time.Hour), w.f1, w.f2, evil), mallory)
	for _, c := range clients(t, w.r) {
		got, err := c.get(t, evil.Path)
		if err != nil || string(got) != "malware" {
			t.Fatalf("%s: the documented boundary moved: %v %q", c.name, err, got)
		}
	}
}
