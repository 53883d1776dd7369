package client

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestRepoReleasesAndDownload(t *testing.T) {
	for _, claimed := range []bool{false, true} {
		f := newFixture(t, "widget", claimed,
			release{"1.2.0", map[string]string{"widget-1.2.0.tar.gz": "one two", "widget.whl": "wheel"}},
			release{"1.10.0", map[string]string{"widget-1.10.0.tar.gz": "ten"}},
			release{"1.10.0-rc.1", map[string]string{"widget-rc.tar.gz": "rc"}},
		)
		r := f.repo(t)
		pr, err := r.ProjectRole(ctx(t), "widget")
		if err != nil {
			t.Fatal(err)
		}
		wantDelegator := "recently-claimed"
		if claimed {
			wantDelegator = "claimed"
		}
		if pr.Delegator != wantDelegator || pr.Threshold != 1 || !pr.TrustsKey(f.key.ID) || pr.Version() != 4 {
			t.Errorf("claimed=%v: role = delegator %q threshold %d keys %v version %d", claimed, pr.Delegator, pr.Threshold, pr.KeyIDs, pr.Version())
		}
		var got []string
		for _, rel := range pr.Releases() {
			got = append(got, rel.Version)
		}
		if want := "1.10.0 1.10.0-rc.1 1.2.0"; strings.Join(got, " ") != want {
			t.Errorf("releases = %v, want %s", got, want)
		}

		dir := filepath.Join(t.TempDir(), "out")
		files, err := r.Download(ctx(t), "widget", "1.2.0", dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 2 {
			t.Fatalf("downloaded %d files", len(files))
		}
		for name, want := range map[string]string{"widget-1.2.0.tar.gz": "one two", "widget.whl": "wheel"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(b) != want {
				t.Errorf("%s = %q, %v; want %q", name, b, err, want)
			}
		}
		if _, err := r.Download(ctx(t), "widget", "9.9", dir); !IsNotFound(err) {
			t.Errorf("download of a missing release: %v, want not found", err)
		}
	}
}

func TestRepoUnknownProject(t *testing.T) {
	f := newFixture(t, "widget", false)
	_, err := f.repo(t).ProjectRole(ctx(t), "gadget")
	if !IsNotFound(err) || Classify(err) != ExitFailure || !strings.Contains(err.Error(), `"gadget"`) {
		t.Fatalf("err = %v (exit %d), want not found naming the project", err, Classify(err))
	}
}

// resign returns md signed by the given keys.
func resign(t *testing.T, md *metadata.Metadata[metadata.TargetsType], keys ...*clienttest.Key) []byte {
	t.Helper()
	md.ClearSignatures()
	for _, k := range keys {
		if _, err := md.Sign(k.Signer); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// nextVersion returns a copy of the fixture's role as the next version.
func nextVersion(t *testing.T, f *fixture) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	raw, err := f.role.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	md.Signed.Version++
	md.ClearSignatures()
	return md
}

func TestRepoVerificationFailures(t *testing.T) {
	rel := release{"1.0", map[string]string{"w.tar.gz": "the real bytes"}}
	tests := []struct {
		name     string
		attack   func(t *testing.T, f *fixture)
		download bool // the failure shows when downloading, not when loading the role
		want     ExitCode
		mention  string // the message must name what failed
	}{
		{
			name: "target bytes replaced",
			attack: func(t *testing.T, f *fixture) {
				f.srv.SetTamper(func(name string, b []byte) []byte {
					if strings.HasPrefix(name, "widget/") {
						return bytes.ToUpper(b)
					}
					return b
				})
			},
			download: true, want: ExitHashMismatch, mention: "widget/1.0/w.tar.gz",
		},
		{
			name: "target longer than signed",
			attack: func(t *testing.T, f *fixture) {
				f.srv.SetTamper(func(name string, b []byte) []byte {
					if strings.HasPrefix(name, "widget/") {
						return append(b, " and more"...)
					}
					return b
				})
			},
			download: true, want: ExitHashMismatch, mention: "widget/1.0/w.tar.gz",
		},
		{
			name: "role signed by a key the delegation does not trust",
			attack: func(t *testing.T, f *fixture) {
				f.srv.PublishRole("widget", resign(t, nextVersion(t, f), clienttest.NewKey(t)))
			},
			want: ExitKeyNotTrusted, mention: "widget",
		},
		{
			name: "role altered after signing",
			attack: func(t *testing.T, f *fixture) {
				md := nextVersion(t, f)
				md.Sign(f.key.Signer)
				md.Signed.Targets["widget/1.0/w.tar.gz"].Length++ // after signing
				raw, _ := md.ToBytes(false)
				f.srv.PublishRole("widget", raw)
			},
			want: ExitSignatureInvalid, mention: "widget",
		},
		{
			name:    "role without signatures",
			attack:  func(t *testing.T, f *fixture) { f.srv.PublishRole("widget", resign(t, nextVersion(t, f))) },
			want:    ExitSignatureInvalid,
			mention: "widget",
		},
		{
			name: "expired role",
			attack: func(t *testing.T, f *fixture) {
				md := nextVersion(t, f)
				md.Signed.Expires = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
				f.srv.PublishRole("widget", resign(t, md, f.key))
			},
			want: ExitPolicy, mention: "widget",
		},
		{
			// go-tuf v2.4.2's FromBytes panics on this; the client reports it instead.
			name: "role with a null target",
			attack: func(t *testing.T, f *fixture) {
				// Served in place of the role, padded to the length snapshot lists.
				null := []byte(`{"signatures":[],"signed":{"_type":"targets","expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{"x":null},"version":1}}`)
				f.srv.SetTamper(func(name string, b []byte) []byte {
					if strings.HasSuffix(name, "widget.json") && len(b) >= len(null) {
						return append(slices.Clone(null), bytes.Repeat([]byte(" "), len(b)-len(null))...)
					}
					return b
				})
			},
			want: ExitMalformed, mention: "parser failed",
		},
		{
			name:    "malformed role",
			attack:  func(t *testing.T, f *fixture) { f.srv.PublishRole("widget", []byte(`{"signed": nope}`)) },
			want:    ExitMalformed,
			mention: "widget",
		},
		{
			name: "snapshot longer than the timestamp says",
			attack: func(t *testing.T, f *fixture) {
				f.srv.SetTamper(func(name string, b []byte) []byte {
					if strings.HasSuffix(name, ".snapshot.json") {
						return append(b, ' ')
					}
					return b
				})
			},
			want: ExitHashMismatch, mention: "snapshot",
		},
		{
			name: "timestamp signed by an unknown key",
			attack: func(t *testing.T, f *fixture) {
				ts, err := metadata.Timestamp().FromBytes(f.srv.File("timestamp.json"))
				if err != nil {
					t.Fatal(err)
				}
				ts.ClearSignatures()
				ts.Sign(clienttest.NewKey(t).Signer)
				raw, _ := ts.ToBytes(false)
				f.srv.SetFile("timestamp.json", raw)
			},
			want: ExitKeyNotTrusted, mention: "timestamp",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "widget", false, rel)
			tt.attack(t, f)
			r := f.repo(t)
			dir := filepath.Join(t.TempDir(), "out")
			var err error
			if tt.download {
				_, err = r.Download(ctx(t), "widget", "1.0", dir)
			} else {
				_, err = r.ProjectRole(ctx(t), "widget")
			}
			t.Log(err)
			if got := Classify(err); got != tt.want {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.want)
			}
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("err %T %v is not a *VerifyError", err, err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("message %q does not name %q", err, tt.mention)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("files were written to the output directory: %v", entries)
			}
		})
	}
}

func TestRepoRollback(t *testing.T) {
	f := newFixture(t, "widget", false, release{"1.0", map[string]string{"a": "a"}})
	old := f.srv.File("timestamp.json")
	f.release(t, release{"2.0", map[string]string{"b": "b"}})
	dir := t.TempDir()
	if err := openRepo(t, f.srv, dir).Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	f.srv.SetFile("timestamp.json", old)
	err := openRepo(t, f.srv, dir).Refresh(ctx(t))
	if Classify(err) != ExitPolicy || !strings.Contains(err.Error(), "timestamp") {
		t.Fatalf("refresh after rollback: %v (exit %d), want policy rejection naming timestamp", err, Classify(err))
	}
}

func TestRepoUsesCachedRoot(t *testing.T) {
	f := newFixture(t, "widget", false, release{"1.0", map[string]string{"a": "a"}})
	dir := t.TempDir()
	r := openRepo(t, f.srv, dir)
	if _, err := r.ProjectRole(ctx(t), "widget"); err != nil {
		t.Fatal(err)
	}
	// A second run works from the cache and still verifies a new release.
	f.release(t, release{"2.0", map[string]string{"b": "b"}})
	rels, err := openRepo(t, f.srv, dir).Releases(ctx(t), "widget")
	if err != nil || len(rels) != 2 {
		t.Fatalf("releases = %v, %v", rels, err)
	}
}

func TestOpenRepoRejectsBadRoot(t *testing.T) {
	_, err := OpenRepo(RepoConfig{Server: "http://x", TrustedRoot: []byte("nope"), MetadataDir: t.TempDir()})
	if Classify(err) != ExitMalformed {
		t.Fatalf("err = %v, want malformed", err)
	}
	_, err = OpenRepo(RepoConfig{Server: "ftp://x", TrustedRoot: []byte("{}"), MetadataDir: t.TempDir()})
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an api error for the URL", err)
	}
}

// TestRepoFallsBackToClassicSnapshotWithoutTree: a server whose timestamp carries no Merkle
// snapshot (an older one: the clienttest server) is read through snapshot.json.
func TestRepoFallsBackToClassicSnapshotWithoutTree(t *testing.T) {
	f := newFixture(t, "widget", false, release{"1.0.0", map[string]string{"widget.tar.gz": "one"}})
	r := f.repo(t)
	if _, err := r.ProjectRole(ctx(t), "widget"); err != nil {
		t.Fatal(err)
	}
	if r.UsedMerkle() || r.SnapshotVersion() == 0 {
		t.Fatalf("merkle %v, snapshot %d: want the classic snapshot", r.UsedMerkle(), r.SnapshotVersion())
	}
	if _, err := os.Stat(filepath.Join(r.cfg.MetadataDir, "snapshot.json")); err != nil {
		t.Fatalf("the classic path caches snapshot.json: %v", err)
	}
}
