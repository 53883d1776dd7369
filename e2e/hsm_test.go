package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/softhsm"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// TestHSMOnlineKeys runs cairnd with its three online keys on a SoftHSM2 token (made with
// softhsm2-util and pkcs11-tool; the private keys never leave it): go-tuf, tuf-js and
// cairn download verified releases; `cairnd keys check` confirms the keys against root and
// targets; and a server configured with a key that root does not delegate to refuses to
// start.
func TestHSMOnlineKeys(t *testing.T) {
	// SoftHSM reads SOFTHSM2_CONF once per process, when the module is first loaded: this
	// is the only test in the package that uses PKCS#11.
	tok, err := softhsm.Setup(t.TempDir(), "cairn-e2e")
	if err != nil {
		t.Fatal(err)
	}
	uris := map[string]string{}
	for i, k := range []struct{ label, kt string }{
		{"timestamp", softhsm.ECDSAP256}, {"snapshot", softhsm.Ed25519}, {"recently-claimed", softhsm.ECDSAP256}, {"intruder", softhsm.Ed25519},
	} {
		if uris[k.label], err = tok.GenerateKey(k.label, byte(i+1), k.kt); err != nil {
			t.Fatal(err)
		}
	}
	w := newWorldWith(t, func(c *daemon.Config) {
		c.TimestampKey, c.SnapshotKey, c.RecentlyClaimedKey = uris["timestamp"], uris["snapshot"], uris["recently-claimed"]
	})
	r := w.r

	// The published metadata is signed by the token's keys.
	keyID := func(uri string) string {
		out := bootCairndOK(t, bootEnv{}, "keys", "public", "--key", uri)
		var k api.Key
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			t.Fatalf("keys public: %v: %s", err, out)
		}
		mk, err := tufrepo.KeyFromAPI(k)
		if err != nil {
			t.Fatal(err)
		}
		return tufrepo.KeyID(mk)
	}
	for role, file := range map[string]string{"timestamp": "timestamp.json", "snapshot": "1.snapshot.json"} {
		var md struct {
			Signatures []struct {
				KeyID string `json:"keyid"`
			} `json:"signatures"`
		}
		if err := json.Unmarshal(r.Do(t, "GET", "/metadata/"+file, "", "", nil).Body, &md); err != nil || len(md.Signatures) != 1 {
			t.Fatalf("%s: %v %+v", file, err, md)
		}
		if want := keyID(uris[role]); md.Signatures[0].KeyID != want {
			t.Fatalf("%s signed by %s, want the token's key %s", file, md.Signatures[0].KeyID, want)
		}
	}
	for _, c := range clients(t, r) {
		for _, f := range []testrepo.File{w.f1, w.f2} {
			got, err := c.get(t, f.Path)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.name, f.Path, err)
			}
			if !bytes.Equal(got, f.Content) {
				t.Fatalf("%s: %s: got %q", c.name, f.Path, got)
			}
		}
	}

	// keys check: every key reached, signed a probe, and is the one root/targets delegate.
	env := bootEnv{"CAIRN_DATABASE_URL": r.Config.DatabaseURL, "CAIRN_TIMESTAMP_KEY": uris["timestamp"], "CAIRN_SNAPSHOT_KEY": uris["snapshot"], "CAIRN_RECENTLY_CLAIMED_KEY": uris["recently-claimed"]}
	out := bootCairndOK(t, env, "keys", "check", "--output", "json")
	var res struct {
		Keys []daemon.KeyCheck `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Keys) != 3 {
		t.Fatalf("keys check: %v: %s", err, out)
	}
	for _, k := range res.Keys {
		if !k.OK || k.Probe != "ok" || !strings.Contains(k.Delegation, "delegates "+k.Signer+" to this key") || strings.Contains(k.URI, tok.PIN) {
			t.Errorf("keys check %+v", k)
		}
	}

	// A timestamp key that root does not delegate to: keys check says so and exits 1, and
	// the server refuses to start rather than publish timestamps no client accepts.
	env["CAIRN_TIMESTAMP_KEY"] = uris["intruder"]
	code, out, errs := bootCairnd(t, env, "keys", "check")
	if code != 1 || !strings.Contains(out, "MISMATCH: root v1 delegates timestamp to "+keyID(uris["timestamp"])) || !strings.Contains(errs, "1 of 3 online keys failed") {
		t.Fatalf("keys check with the wrong key: exit %d\n%s\n%s", code, out, errs)
	}
	cfg := r.Config
	cfg.Listen, cfg.TimestampKey = "127.0.0.1:0", uris["intruder"]
	if run, err := daemon.Start(context.Background(), cfg, func(string) string { return "" }, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		run.Close()
		t.Fatal("cairnd started with a timestamp key that root does not delegate to")
	} else if !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), "delegates timestamp to") {
		t.Fatalf("start with the wrong key: %v", err)
	}

	// With a transparency log, every key must be able to sign log statements: SoftHSM2
	// (on OpenSSL 3.0) has no Ed25519ph, which Rekor v2 needs for Ed25519 keys, so the
	// token's Ed25519 snapshot key is refused at start rather than leaving every snapshot
	// unlogged.
	cfg = r.Config
	cfg.Listen, cfg.RekorURL = "127.0.0.1:0", "http://127.0.0.1:1"
	if run, err := daemon.Start(context.Background(), cfg, func(string) string { return "" }, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		run.Close()
		t.Fatal("cairnd started with a transparency log and a key that cannot sign for it")
	} else if !strings.Contains(err.Error(), "the snapshot key "+keyID(uris["snapshot"])+" cannot sign transparency log statements") {
		t.Fatalf("start with a log and an unloggable key: %v", err)
	}
}
