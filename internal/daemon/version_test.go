package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/buildinfo"
)

func TestVersionCommand(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, &out, &errb, func(string) string { return "" })
		return code, out.String(), errb.String()
	}
	code, out, errs := run("version")
	if code != 0 || !strings.HasPrefix(out, "cairnd ") || !strings.Contains(out, runtime.Version()) || out == "dev\n" {
		t.Fatalf("cairnd version: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, args := range [][]string{{"version", "--output", "json"}, {"version", "-o", "json"}} {
		code, out, errs := run(args...)
		var info buildinfo.Info
		if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil {
			t.Fatalf("cairnd %v: exit %d, %v, stderr %q", args, code, err, errs)
		}
		if info.Program != "cairnd" || info.GoVersion != runtime.Version() || info.Version == "" {
			t.Errorf("cairnd %v = %+v", args, info)
		}
	}
	if code, out, errs := run("version", "--output", "yaml"); code == 0 || out != "" || !strings.Contains(errs, `--output must be text or json, not "yaml"`) {
		t.Errorf("cairnd version --output yaml: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
