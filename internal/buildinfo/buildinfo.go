// Package buildinfo says which build of cairn or cairnd is running, from what the Go
// toolchain records in every binary (runtime/debug.ReadBuildInfo): the module version,
// the VCS revision and commit time, whether the work tree had local changes, and the Go
// version. Nothing has to be passed with -ldflags, so `go build`, `go install …@vX` and
// the container image all report themselves the same way.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is one binary's build. Its JSON form is what `cairn version --output json` and
// `cairnd version --output json` print; fields are only ever added.
type Info struct {
	// Program is the command's name: cairn or cairnd.
	Program string `json:"program"`
	// Version is the main module's version: a release tag (v1.2.0) for `go install
	// …@v1.2.0` or a build from a tagged commit, a pseudo-version
	// (v0.0.0-20260101120000-abcdef123456, "+dirty" when modified) for other builds in a
	// git checkout, and "(devel)" when the toolchain knew neither (no VCS information,
	// as under `go test` or with -buildvcs=false).
	Version string `json:"version"`
	// Revision is the VCS commit (vcs.revision), empty when unknown.
	Revision string `json:"revision,omitempty"`
	// Time is the commit's time, RFC 3339 (vcs.time), empty when unknown.
	Time string `json:"time,omitempty"`
	// Modified says the work tree had uncommitted changes (vcs.modified).
	Modified bool `json:"modified"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Develop is the version of a build whose module version the toolchain did not know.
const Develop = "(devel)"

// Read returns the build of the running binary.
func Read(program string) Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return From(program, bi)
}

// From reads Info out of bi, which may be nil (a binary built without module support).
func From(program string, bi *debug.BuildInfo) Info {
	info := Info{Program: program, Version: Develop, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	if v := bi.Main.Version; v != "" {
		info.Version = v
	}
	goos, goarch := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" && goarch != "" {
		info.Platform = goos + "/" + goarch
	}
	return info
}

// String is the one-line text form, for people and for logs:
//
//	cairnd v1.2.0 (commit 0123456789ab, 2026-01-02T03:04:05Z) go1.26.8 linux/amd64
//	cairn (devel) (commit 0123456789ab, 2026-01-02T03:04:05Z, modified) go1.26.8 linux/amd64
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", i.Program, i.Version)
	var vcs []string
	if i.Revision != "" {
		vcs = append(vcs, "commit "+short(i.Revision))
	}
	if i.Time != "" {
		vcs = append(vcs, i.Time)
	}
	if i.Modified {
		vcs = append(vcs, "modified")
	}
	if len(vcs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(vcs, ", "))
	}
	fmt.Fprintf(&b, " %s %s", i.GoVersion, i.Platform)
	return b.String()
}

// short abbreviates a commit hash as git does in its longer forms; 12 hex digits stay
// unambiguous in any repository this size.
func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
