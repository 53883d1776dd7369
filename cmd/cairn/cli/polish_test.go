package cli

import (
	"context"
	"encoding/json"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/buildinfo"
	"github.com/spf13/cobra"
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

// walkCommands calls f with the arguments that name each command of the tree.
func walkCommands(t *testing.T, f func(path []string, cmd *cobra.Command)) {
	t.Helper()
	var walk func(path []string, c *cobra.Command)
	walk = func(path []string, c *cobra.Command) {
		f(path, c)
		for _, sub := range c.Commands() {
			walk(append(slices.Clone(path), sub.Name()), sub)
		}
	}
	a := &app{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard, env: func(string) string { return "" }}
	walk(nil, a.rootCommand())
}

// Every command's help shows -h, --help and its boolean flags plainly, as cosign's,
// oras's and helm's do (pflag v1.1.0 alone prints "--help[=true|false]").
func TestHelpFlagsArePlain(t *testing.T) {
	c := newCLI(t)
	n := 0
	walkCommands(t, func(path []string, cmd *cobra.Command) {
		n++
		help := c.ok(append(path, "--help")...)
		if !strings.Contains(help, "  -h, --help ") || strings.Contains(help, "[=true|false]") || strings.Contains(help, "--help[") {
			t.Errorf("cairn %s --help:\n%s", strings.Join(path, " "), help)
		}
		if short := c.ok(append(path, "-h")...); short != help {
			t.Errorf("cairn %s -h differs from --help", strings.Join(path, " "))
		}
	})
	if n < 20 {
		t.Fatalf("walked %d commands", n)
	}
	if help := c.ok("help", "sign"); !strings.Contains(help, "  -y, --yes ") {
		t.Errorf("cairn help sign:\n%s", help)
	}
}

// Shown plainly, a boolean flag still parses every way it did.
func TestPlainBoolFlagsStillParse(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{nil, false}, {[]string{"--yes"}, true}, {[]string{"-y"}, true}, {[]string{"--yes=false"}, false},
		{[]string{"--yes=true"}, true}, {[]string{"-y=false"}, false},
	} {
		var sign *cobra.Command
		walkCommands(t, func(path []string, cmd *cobra.Command) {
			if strings.Join(path, " ") == "sign" {
				sign = cmd
			}
		})
		if err := sign.ParseFlags(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if got, err := sign.Flags().GetBool("yes"); err != nil || got != tt.want {
			t.Errorf("%v: yes = %v, %v; want %v", tt.args, got, err, tt.want)
		}
	}
	c := newCLI(t)
	c.fails(10, `invalid argument "maybe" for "-y, --yes"`, "sign", "p", "--key", "k", "--yes=maybe")
}
