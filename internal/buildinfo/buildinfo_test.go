package buildinfo

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name     string
		bi       *debug.BuildInfo
		want     Info
		wantText string
	}{
		{
			name: "release installed with go install",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/cairn-dev/cairn", Version: "v1.2.0"},
				Settings: settings("GOOS", "linux", "GOARCH", "arm64", "vcs.revision", "0123456789abcdef0123456789abcdef01234567", "vcs.time", "2026-01-02T03:04:05Z", "vcs.modified", "false")},
			want: Info{Program: "cairnd", Version: "v1.2.0", Revision: "0123456789abcdef0123456789abcdef01234567", Time: "2026-01-02T03:04:05Z",
				GoVersion: "go1.26.8", Platform: "linux/arm64"},
			wantText: "cairnd v1.2.0 (commit 0123456789ab, 2026-01-02T03:04:05Z) go1.26.8 linux/arm64",
		},
		{
			name: "checkout with local changes",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20260102030405-0123456789ab+dirty"},
				Settings: settings("GOOS", "darwin", "GOARCH", "amd64", "vcs.revision", "0123456789abcdef", "vcs.time", "2026-01-02T03:04:05Z", "vcs.modified", "true")},
			want: Info{Program: "cairnd", Version: "v0.0.0-20260102030405-0123456789ab+dirty", Revision: "0123456789abcdef", Time: "2026-01-02T03:04:05Z",
				Modified: true, GoVersion: "go1.26.8", Platform: "darwin/amd64"},
			wantText: "cairnd v0.0.0-20260102030405-0123456789ab+dirty (commit 0123456789ab, 2026-01-02T03:04:05Z, modified) go1.26.8 darwin/amd64",
		},
		{
			name:     "no VCS information (go test, -buildvcs=false)",
			bi:       &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: settings("GOOS", "linux", "GOARCH", "amd64")},
			want:     Info{Program: "cairnd", Version: Develop, GoVersion: "go1.26.8", Platform: "linux/amd64"},
			wantText: "cairnd (devel) go1.26.8 linux/amd64",
		},
		{
			name:     "no build information at all",
			bi:       nil,
			want:     Info{Program: "cairnd", Version: Develop, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH},
			wantText: "cairnd (devel) " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := From("cairnd", tt.bi)
			if got != tt.want {
				t.Errorf("From = %+v\nwant   %+v", got, tt.want)
			}
			if s := got.String(); s != tt.wantText {
				t.Errorf("String = %q\nwant     %q", s, tt.wantText)
			}
		})
	}
}

// The JSON names are an interface scripts read: renaming one must fail a test.
func TestJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(Info{Program: "cairn", Version: "v1.0.0", Revision: "abc", Time: "t", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"program":"cairn","version":"v1.0.0","revision":"abc","time":"t","modified":true,"go_version":"go1.26.8","platform":"linux/amd64"}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
}

// Under go test the binary has build information but no VCS stamp: Read must still name
// the Go version that built it rather than fail.
func TestReadRunningBinary(t *testing.T) {
	got := Read("cairn")
	if got.Program != "cairn" || got.GoVersion != runtime.Version() || got.Version == "" || !strings.Contains(got.Platform, "/") {
		t.Errorf("Read = %+v", got)
	}
}
