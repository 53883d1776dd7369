package cli

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	c := newCLI(t)
	text := c.ok("version")
	if !strings.HasPrefix(text, "cairn ") || !strings.Contains(text, runtime.Version()) || strings.Contains(text, "dev\n") {
		t.Errorf("cairn version = %q", text)
	}
	for _, args := range [][]string{{"version", "--output", "json"}} {
		var info buildinfo.Info
		if err := json.Unmarshal([]byte(c.ok(args...)), &info); err != nil {
			t.Fatalf("cairn %v: %v", args, err)
		}
		if info.Program != "cairn" || info.GoVersion != runtime.Version() || info.Version == "" || info.Platform != runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("cairn %v = %+v", args, info)
		}
	}
	c.fails(10, `--output must be text or json, not "yaml"`, "version", "--output", "yaml")
	c.fails(10, "unknown command", "version", "extra")
}
