package client

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.2", "1.10", -1},
		{"1.10", "1.9.9", 1},
		{"1.0.0", "1.0.0", 0},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0", "1.0.0.1", -1},
		{"1.0a1", "1.0b1", -1},
		{"1.0b1", "1.0rc1", -1},
		{"1.0rc1", "1.0", -1},
		{"1.0", "1.0.post1", -1},
		{"1.0.1", "1.0.rc1", 1},
		{"2", "10", -1},
		{"01", "1", -1}, // numerically equal: byte order decides, so the order stays total
		{"v2", "v10", -1},
		{"2024.01.15", "2024.1.16", -1},
		{"1.0-RC1", "1.0-rc2", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func targetsWith(t *testing.T, entries map[string]string) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	md := NewProjectRole(time.Now())
	for path, custom := range entries {
		tf := &metadata.TargetFiles{Length: 3, Hashes: metadata.Hashes{"sha256": make([]byte, 32)}, Path: path}
		if custom != "" {
			raw := json.RawMessage(custom)
			tf.Custom = &raw
		}
		md.Signed.Targets[path] = tf
	}
	return md
}

func TestReleasesFromRole(t *testing.T) {
	md := targetsWith(t, map[string]string{
		"p/1.0/a.tar.gz":  `{"version":"1.0"}`,
		"p/1.0/b.whl":     ``,
		"p/2.0/a.tar.gz":  `{"version":"2.0","yanked":true}`,
		"p/1.10/a.tar.gz": `{"version":"1.10"}`,
		"other/1.0/x":     ``, // not the project's path: ignored
		"p/1.0/sub/x":     ``, // four components: ignored
		"p/../x":          ``,
	})
	rels := ReleasesFromRole("p", md)
	var got []string
	for _, r := range rels {
		got = append(got, r.Version)
	}
	if want := []string{"2.0", "1.10", "1.0"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("versions = %v, want %v", got, want)
	}
	if !rels[0].Yanked || rels[1].Yanked {
		t.Errorf("yanked flags = %v %v", rels[0].Yanked, rels[1].Yanked)
	}
	if r := rels[2]; len(r.Files) != 2 || r.Files[0].Name != "a.tar.gz" || r.Files[1].Path != "p/1.0/b.whl" || r.Files[0].SHA256 == "" {
		t.Errorf("files of 1.0 = %+v", r.Files)
	}
	latest, ok := LatestRelease(rels)
	if !ok || latest.Version != "1.10" {
		t.Errorf("latest = %q, %v; want 1.10 (2.0 is yanked)", latest.Version, ok)
	}
	if _, ok := LatestRelease(rels[:1]); ok {
		t.Error("latest of only yanked releases should not exist")
	}
}

func TestNextProjectRole(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	cur := targetsWith(t, map[string]string{"p/1.0/a": `{"version":"1.0"}`})
	cur.Signed.Version = 7
	sum := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	files := []api.File{{Name: "a.tar.gz", Length: 4, SHA256: sum}}

	next, err := NextProjectRole(cur, "p", "2.0", files, now)
	if err != nil {
		t.Fatal(err)
	}
	if next.Signed.Version != 8 || len(next.Signed.Targets) != 2 || next.Signed.Targets["p/1.0/a"] != cur.Signed.Targets["p/1.0/a"] {
		t.Errorf("next = version %d, targets %v", next.Signed.Version, next.Signed.Targets)
	}
	if want := now.Add(365 * 24 * time.Hour).Truncate(time.Second); !next.Signed.Expires.Equal(want) || next.Signed.Expires.Location() != time.UTC {
		t.Errorf("expires = %v, want %v", next.Signed.Expires, want)
	}
	raw, err := json.Marshal(next.Signed.Targets["p/2.0/a.tar.gz"])
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"custom":{"version":"2.0"},"hashes":{"sha256":"` + sum + `"},"length":4}`; string(raw) != want {
		t.Errorf("new target = %s, want %s", raw, want)
	}
	if next.Signed.Delegations != nil || len(next.Signatures) != 0 {
		t.Error("next role must have no delegations and no signatures")
	}

	refusals := []struct {
		name    string
		version string
		files   []api.File
		code    api.Code
	}{
		{"released version", "1.0", files, api.CodeImmutablePath},
		{"bad version", "../1", files, api.CodeInvalidPath},
		{"bad file name", "3.0", []api.File{{Name: ".hidden", SHA256: sum}}, api.CodeInvalidPath},
		{"file name with slash", "3.0", []api.File{{Name: "a/b", SHA256: sum}}, api.CodeInvalidPath},
		{"duplicate names", "3.0", []api.File{files[0], files[0]}, api.CodeInvalidPath},
		{"no files", "3.0", nil, api.CodeBadRequest},
		{"bad digest", "3.0", []api.File{{Name: "a", SHA256: "abc"}}, api.CodeHashMismatch},
	}
	for _, r := range refusals {
		_, err := NextProjectRole(cur, "p", r.version, r.files, now)
		if api.CodeOf(err) != r.code {
			t.Errorf("%s: err = %v, want code %s", r.name, err, r.code)
		}
	}
}
